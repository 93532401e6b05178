"""`fto data check`: the three common mistakes looked for before money is spent — too little data, poor data
(duplicates, near-duplicates, conflicts, leaks into the eval set, empty or cut answers, odd answers), and sensitive
data (e-mail addresses, phone numbers, card numbers, IBANs, keys). Every finding names its file and lines."""

from fto.orchestrator.data.check.checks import CheckOptions, CheckReport, Issue, check_file, check_records

__all__ = ["CheckOptions", "CheckReport", "Issue", "check_file", "check_records"]
