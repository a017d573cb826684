"""One module per venue: its config keys and their meanings, defaults, checks and protocol rules in plain
Python (the readable spec its kernel header in ``ext/venues/`` must match).

Only Aave v4 lives here so far (``aave_v4``); the registry that maps ``market.protocol`` to a venue module
is added when the engines dispatch on it.
"""
