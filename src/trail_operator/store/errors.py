"""What a store call can fail with, apart from the client that raises it.

Kept out of `client.py` so that code which only names these (the row encoders
a parse worker imports) does not load the ClickHouse driver.
"""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store refused a statement or could not be reached."""


class StoreUnavailableError(StoreError):
    """The store could not be reached; the caller should retry later."""


class StoreDataError(StoreError):
    """The store refused the data itself (a value it cannot read into its column):
    the same rows would be refused again, however often they are retried."""
