"""KYC documents: content checks, scanning, encrypted storage (local files by default, S3 as an option)."""
