"""Pure trading logic: no I/O, no clocks, no AWS. Everything here is a function of its arguments."""
