"""Synthetic, labelled Windows authentication logs (``authml generate``).

``population`` builds the organisation, ``benign`` its ordinary days, ``attacks`` the labelled
scenarios, ``render`` the Winlogbeat documents, ``writer`` the files, ``run`` ties them together.
"""
