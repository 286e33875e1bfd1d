"""Conformance cases for the transform engine (cases as data) and helpers to build small stores."""
