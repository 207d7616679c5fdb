"""The local AWS whose machines are real hosts: a dev and test tool, never product code (see README.md)."""
