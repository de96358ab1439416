"""The one exception type for problems the user can fix (bad files, bad settings)."""


class MTError(Exception):
    """A user-facing error: its message names the file, line or key at fault."""
