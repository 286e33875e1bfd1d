"""Lookup tables for Windows Security events, as Winlogbeat and the Elastic Agent `system`
integration's security pipeline use them (elastic/beats winlogbeat/sys/winevent; elastic/integrations
packages/system/data_stream/security/elasticsearch/ingest_pipeline). The values are Windows facts
(event ids, logon types, status codes) and the ECS names Elastic gives them; keeping the same names
is what lets one set of transforms read both authml's store and an Elastic Agent data stream."""

from __future__ import annotations

SECURITY_AUDITING = "Microsoft-Windows-Security-Auditing"

# Providers whose events the integration's "standard" security pipeline maps.
STANDARD_PIPELINE_PROVIDERS = frozenset({"Microsoft-Windows-Eventlog", SECURITY_AUDITING})

# event.code -> (event.category, event.type, event.action)
CATEGORIZATION: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "1100": (("process",), ("end",), "logging-service-shutdown"),
    "1102": (("iam",), ("admin", "change"), "audit-log-cleared"),
    "1104": (("iam",), ("admin",), "logging-full"),
    "1105": (("iam",), ("admin",), "auditlog-archieved"),
    "4616": (("configuration",), ("change",), "system-time-changed"),
    "4624": (("authentication",), ("start",), "logged-in"),
    "4625": (("authentication",), ("start",), "logon-failed"),
    "4634": (("authentication",), ("end",), "logged-out"),
    "4647": (("authentication",), ("end",), "logged-out"),
    "4648": (("authentication",), ("start",), "logged-in-explicit"),
    "4672": (("iam",), ("admin",), "logged-in-special"),
    "4673": (("iam",), ("admin",), "privileged-service-called"),
    "4688": (("process",), ("start",), "created-process"),
    "4689": (("process",), ("end",), "exited-process"),
    "4697": (("iam", "configuration"), ("admin", "change"), "service-installed"),
    "4698": (("iam", "configuration"), ("creation", "admin"), "scheduled-task-created"),
    "4702": (("iam", "configuration"), ("change", "admin"), "scheduled-task-updated"),
    "4719": (("iam", "configuration"), ("admin", "change"), "changed-audit-config"),
    "4720": (("iam",), ("user", "creation"), "added-user-account"),
    "4722": (("iam",), ("user", "change"), "enabled-user-account"),
    "4723": (("iam",), ("user", "change"), "changed-password"),
    "4724": (("iam",), ("user", "change"), "reset-password"),
    "4725": (("iam",), ("user", "deletion"), "disabled-user-account"),
    "4726": (("iam",), ("user", "deletion"), "deleted-user-account"),
    "4728": (("iam",), ("group", "change"), "added-member-to-group"),
    "4731": (("iam",), ("group", "creation"), "added-group-account"),
    "4732": (("iam",), ("group", "change"), "added-member-to-group"),
    "4733": (("iam",), ("group", "change"), "removed-member-from-group"),
    "4735": (("iam",), ("group", "change"), "modified-group-account"),
    "4738": (("iam",), ("user", "change"), "modified-user-account"),
    "4739": (("configuration",), ("change",), "domain-policy-changed"),
    "4740": (("iam",), ("user", "change"), "locked-out-user-account"),
    "4742": (("iam",), ("change", "admin"), "changed-computer-account"),
    "4767": (("iam",), ("user", "change"), "unlocked-user-account"),
    "4768": (("authentication",), ("start",), "kerberos-authentication-ticket-requested"),
    "4769": (("authentication",), ("start",), "kerberos-service-ticket-requested"),
    "4770": (("authentication",), ("start",), "kerberos-service-ticket-renewed"),
    "4771": (("authentication",), ("start",), "kerberos-preauth-failed"),
    "4776": (("authentication",), ("start",), "credential-validated"),
    "4778": (("authentication", "session"), ("start",), "session-reconnected"),
    "4779": (("authentication", "session"), ("end",), "session-disconnected"),
    "4781": (("iam",), ("user", "change"), "renamed-user-account"),
    "4798": (("iam",), ("user", "info"), "group-membership-enumerated"),
    "4799": (("iam",), ("group", "info"), "user-member-enumerated"),
    "4902": (("iam", "configuration"), ("admin", "creation"), "user-audit-policy-created"),
    "4904": (("iam", "configuration"), ("admin", "change"), "security-event-source-added"),
    "4905": (("iam", "configuration"), ("admin", "deletion"), "security-event-source-removed"),
    "4907": (("iam", "configuration"), ("admin", "change"), "audit-setting-changed"),
    "5024": (("process",), ("start",), "windows-firewall-service-started"),
    "5033": (("driver",), ("start",), "windows-firewall-driver-started"),
    "5140": (("network", "file"), ("info", "access"), "network-share-object-accessed"),
    "5145": (("network", "file"), ("info", "access"), "network-share-object-access-checked"),
}

LOGON_TYPES = {
    "2": "Interactive",
    "3": "Network",
    "4": "Batch",
    "5": "Service",
    "7": "Unlock",
    "8": "NetworkCleartext",
    "9": "NewCredentials",
    "10": "RemoteInteractive",
    "11": "CachedInteractive",
}

# Which account becomes user.* (see CONVENTIONS: Target for logons, Subject for actions).
TARGET_USER_CODES = frozenset(
    {"4624", "4625", "4634", "4647", "4648", "4768", "4769", "4770", "4771", "4776", "4964"}
)
# Applied after the Target copy, so for 4648 (explicit credentials) the Subject wins and the
# Target becomes user.effective.
SUBJECT_USER_CODES = frozenset(
    "4657 4670 4672 4673 4674 4688 4689 4697 4698 4699 4700 4701 4702 4706 4707 4713 4716 4717 "
    "4718 4719 4720 4722 4723 4724 4725 4726 4727 4728 4729 4730 4731 4732 4733 4734 4735 4737 "
    "4738 4739 4740 4741 4742 4743 4744 4745 4746 4747 4748 4749 4750 4751 4752 4753 4754 4755 "
    "4756 4757 4758 4759 4760 4761 4762 4763 4764 4767 4781 4798 4799 4817 4904 4905 4907 4912 "
    "4648 5140 5145".split()
)
TARGET_TO_USER_TARGET_CODES = frozenset(
    "4670 4720 4722 4723 4724 4725 4726 4738 4740 4767 4798 4817 4907".split()
)
TARGET_TO_USER_EFFECTIVE_CODES = frozenset({"4648", "4688"})
TARGET_LOGON_ID_CODES = frozenset({"4634", "4647", "4964"})
SESSION_CODES = frozenset({"4778", "4779"})
# Codes whose ProcessId/ProcessName/IpAddress/IpPort/WorkstationName move to process.*/source.*.
COMMON_AUTH_FIELD_CODES = frozenset(
    "1100 1102 1104 1105 1108 4624 4648 4625 4670 4673 4674 4689 4697 4719 4720 4722 4723 4724 "
    "4725 4726 4727 4728 4729 4730 4731 4732 4733 4734 4735 4737 4738 4740 4741 4742 4743 4744 "
    "4745 4746 4747 4748 4749 4750 4751 4752 4753 4754 4755 4756 4757 4758 4759 4760 4761 4762 "
    "4763 4764 4767 4768 4769 4770 4771 4798 4799 4817 4904 4905 4907 4912 5140 5145".split()
)
RELATED_SUBJECT_USER_CODES = frozenset({"4624", "4648"})
RELATED_TARGET_USER_CODES = frozenset("4688 4720 4722 4723 4724 4725 4726 4738 4740 4767 4798".split())
PRIVILEGE_LIST_CODES = frozenset({"4672", "4673", "4674", "4741", "4742", "4743"})
KERBEROS_STATUS_CODES = frozenset({"4768", "4769", "4770", "4771"})
LOGON_FAILURE_STATUS_CODES = frozenset({"4625", "4776"})

KERBEROS_TICKET_OPTIONS = (
    (0x40000000, "Forwardable"),
    (0x20000000, "Forwarded"),
    (0x10000000, "Proxiable"),
    (0x08000000, "Proxy"),
    (0x04000000, "Allow-postdate"),
    (0x02000000, "Postdated"),
    (0x01000000, "Invalid"),
    (0x00800000, "Renewable"),
    (0x00400000, "Initial"),
    (0x00200000, "Pre-authent"),
    (0x00100000, "Opt-hardware-auth"),
    (0x00080000, "Transited-policy-checked"),
    (0x00040000, "Ok-as-delegate"),
    (0x00020000, "Request-anonymous"),
    (0x00010000, "Name-canonicalize"),
    (0x00000020, "Disable-transited-check"),
    (0x00000010, "Renewable-ok"),
    (0x00000008, "Enc-tkt-in-skey"),
    (0x00000002, "Renew"),
    (0x00000001, "Validate"),
)

KERBEROS_ENCRYPTION_TYPES = {
    "0x1": "DES-CBC-CRC",
    "0x3": "DES-CBC-MD5",
    "0x11": "AES128-CTS-HMAC-SHA1-96",
    "0x12": "AES256-CTS-HMAC-SHA1-96",
    "0x17": "RC4-HMAC",
    "0x18": "RC4-HMAC-EXP",
    "0xffffffff": "FAIL",
}

# Kerberos result codes (RFC 4120 section 7.5.9), keyed as Windows writes them in Status.
KERBEROS_RESULT_CODES = {
    "0x0": "KDC_ERR_NONE",
    "0x1": "KDC_ERR_NAME_EXP",
    "0x2": "KDC_ERR_SERVICE_EXP",
    "0x3": "KDC_ERR_BAD_PVNO",
    "0x4": "KDC_ERR_C_OLD_MAST_KVNO",
    "0x5": "KDC_ERR_S_OLD_MAST_KVNO",
    "0x6": "KDC_ERR_C_PRINCIPAL_UNKNOWN",
    "0x7": "KDC_ERR_S_PRINCIPAL_UNKNOWN",
    "0x8": "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
    "0x9": "KDC_ERR_NULL_KEY",
    "0xA": "KDC_ERR_CANNOT_POSTDATE",
    "0xB": "KDC_ERR_NEVER_VALID",
    "0xC": "KDC_ERR_POLICY",
    "0xD": "KDC_ERR_BADOPTION",
    "0xE": "KDC_ERR_ETYPE_NOTSUPP",
    "0xF": "KDC_ERR_SUMTYPE_NOSUPP",
    "0x10": "KDC_ERR_PADATA_TYPE_NOSUPP",
    "0x11": "KDC_ERR_TRTYPE_NO_SUPP",
    "0x12": "KDC_ERR_CLIENT_REVOKED",
    "0x13": "KDC_ERR_SERVICE_REVOKED",
    "0x14": "KDC_ERR_TGT_REVOKED",
    "0x15": "KDC_ERR_CLIENT_NOTYET",
    "0x16": "KDC_ERR_SERVICE_NOTYET",
    "0x17": "KDC_ERR_KEY_EXPIRED",
    "0x18": "KDC_ERR_PREAUTH_FAILED",
    "0x19": "KDC_ERR_PREAUTH_REQUIRED",
    "0x1A": "KDC_ERR_SERVER_NOMATCH",
    "0x1B": "KDC_ERR_MUST_USE_USER2USER",
    "0x1F": "KRB_AP_ERR_BAD_INTEGRITY",
    "0x20": "KRB_AP_ERR_TKT_EXPIRED",
    "0x21": "KRB_AP_ERR_TKT_NYV",
    "0x22": "KRB_AP_ERR_REPEAT",
    "0x23": "KRB_AP_ERR_NOT_US",
    "0x24": "KRB_AP_ERR_BADMATCH",
    "0x25": "KRB_AP_ERR_SKEW",
    "0x26": "KRB_AP_ERR_BADADDR",
    "0x27": "KRB_AP_ERR_BADVERSION",
    "0x28": "KRB_AP_ERR_MSG_TYPE",
    "0x29": "KRB_AP_ERR_MODIFIED",
    "0x2A": "KRB_AP_ERR_BADORDER",
    "0x2C": "KRB_AP_ERR_BADKEYVER",
    "0x2D": "KRB_AP_ERR_NOKEY",
    "0x2E": "KRB_AP_ERR_MUT_FAIL",
    "0x2F": "KRB_AP_ERR_BADDIRECTION",
    "0x30": "KRB_AP_ERR_METHOD",
    "0x31": "KRB_AP_ERR_BADSEQ",
    "0x32": "KRB_AP_ERR_INAPP_CKSUM",
    "0x33": "KRB_AP_PATH_NOT_ACCEPTED",
    "0x34": "KRB_ERR_RESPONSE_TOO_BIG",
    "0x3C": "KRB_ERR_GENERIC",
    "0x3D": "KRB_ERR_FIELD_TOOLONG",
    "0x3E": "KDC_ERR_CLIENT_NOT_TRUSTED",
    "0x3F": "KDC_ERR_KDC_NOT_TRUSTED",
    "0x40": "KDC_ERR_INVALID_SIG",
    "0x41": "KDC_ERR_KEY_TOO_WEAK",
    "0x42": "KRB_AP_ERR_USER_TO_USER_REQUIRED",
    "0x43": "KRB_AP_ERR_NO_TGT",
    "0x44": "KDC_ERR_WRONG_REALM",
}

# NTSTATUS values of 4625 and 4776 Status/SubStatus -> winlog.logon.failure.status/sub_status.
LOGON_FAILURE_STATUS = {
    "0xc000005e": "There are currently no logon servers available to service the logon request.",
    "0xc0000064": "User logon with misspelled or bad user account",
    "0xc000006a": "User logon with misspelled or bad password",
    "0xc000006d": "This is either due to a bad username or authentication information",
    "0xc000006e": "Unknown user name or bad password.",
    "0xc000006f": "User logon outside authorized hours",
    "0xc0000070": "User logon from unauthorized workstation",
    "0xc0000071": "User logon with expired password",
    "0xc0000072": "User logon to account disabled by administrator",
    "0xc00000dc": "Indicates the Sam Server was in the wrong state to perform the desired operation.",
    "0xc0000133": "Clocks between DC and other computer too far out of sync",
    "0xc000015b": "The user has not been granted the requested logon type (aka logon right) at this machine",
    "0xc000018c": "The logon request failed because the trust relationship between the primary domain "
    "and the trusted domain failed.",
    "0xc0000192": "An attempt was made to logon, but the Netlogon service was not started.",
    "0xc0000193": "User logon with expired account",
    "0xc0000224": "User is required to change password at next logon",
    "0xc0000225": "Evidently a bug in Windows and not a risk",
    "0xc0000234": "User logon with account locked",
    "0xc00002ee": "Failure Reason: An Error occurred during Logon",
    "0xc0000413": "Logon Failure: The machine you are logging onto is protected by an authentication "
    "firewall. The specified account is not allowed to authenticate to the machine.",
    "0xc0000371": "The local account store does not contain secret material for the specified account",
    "0x0": "Status OK.",
}

# msobjs.dll message ids that 4625's FailureReason ("%%2313") refers to.
LOGON_FAILURE_REASONS = {
    "2304": "An Error occured during Logon.",
    "2305": "The specified user account has expired.",
    "2306": "The NetLogon component is not active.",
    "2307": "Account locked out.",
    "2308": "The user has not been granted the requested logon type at this machine.",
    "2309": "The specified account's password has expired.",
    "2310": "Account currently disabled.",
    "2311": "Account logon time restriction violation.",
    "2312": "User not allowed to logon at this computer.",
    "2313": "Unknown user name or bad password.",
    "2314": "Domain sid inconsistent.",
    "2315": "Smartcard logon is required and was not used.",
}

# Security-Auditing task numbers are its audit subcategories; Windows renders them as winlog.task.
SECURITY_AUDITING_TASKS = {
    12288: "Security State Change",
    12289: "Security System Extension",
    12290: "System Integrity",
    12291: "IPsec Driver",
    12292: "Other System Events",
    12544: "Logon",
    12545: "Logoff",
    12546: "Account Lockout",
    12547: "IPsec Main Mode",
    12548: "Special Logon",
    12549: "IPsec Quick Mode",
    12550: "IPsec Extended Mode",
    12551: "Other Logon/Logoff Events",
    12552: "Network Policy Server",
    12553: "User / Device Claims",
    12554: "Group Membership",
    12800: "File System",
    12801: "Registry",
    12802: "Kernel Object",
    12803: "SAM",
    12804: "Other Object Access Events",
    12805: "Certification Services",
    12806: "Application Generated",
    12807: "Handle Manipulation",
    12808: "File Share",
    12809: "Filtering Platform Packet Drop",
    12810: "Filtering Platform Connection",
    12811: "Detailed File Share",
    12812: "Removable Storage",
    12813: "Central Policy Staging",
    13056: "Sensitive Privilege Use",
    13057: "Non Sensitive Privilege Use",
    13058: "Other Privilege Use Events",
    13312: "Process Creation",
    13313: "Process Termination",
    13314: "DPAPI Activity",
    13315: "RPC Events",
    13316: "Plug and Play Events",
    13317: "Token Right Adjusted Events",
    13568: "Audit Policy Change",
    13569: "Authentication Policy Change",
    13570: "Authorization Policy Change",
    13571: "MPSSVC Rule-Level Policy Change",
    13572: "Filtering Platform Policy Change",
    13573: "Other Policy Change Events",
    13824: "User Account Management",
    13825: "Computer Account Management",
    13826: "Security Group Management",
    13827: "Distribution Group Management",
    13828: "Application Group Management",
    13829: "Other Account Management Events",
    14080: "Directory Service Access",
    14081: "Directory Service Changes",
    14082: "Directory Service Replication",
    14083: "Detailed Directory Service Replication",
    14336: "Credential Validation",
    14337: "Kerberos Service Ticket Operations",
    14338: "Other Account Logon Events",
    14339: "Kerberos Authentication Service",
}

# winmeta.xml names Winlogbeat falls back to when the publisher's own metadata is not at hand.
KEYWORD_NAMES = (
    (0x10000000000000, "Audit Failure"),
    (0x20000000000000, "Audit Success"),
    (0x1000000000000, "Response Time"),
    (0x4000000000000, "WDI Diag"),
    (0x8000000000000, "SQM"),
    (0x40000000000000, "Correlation Hint"),
    (0x80000000000000, "Classic"),
)
KEYWORD_AUDIT_FAILURE = 0x10000000000000
KEYWORD_AUDIT_SUCCESS = 0x20000000000000
OPCODE_NAMES = {
    0: "Info",
    1: "Start",
    2: "Stop",
    3: "DCStart",
    4: "DCStop",
    5: "Extension",
    6: "Reply",
    7: "Resume",
    8: "Suspend",
    9: "Send",
}
LEVEL_NAMES = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}
