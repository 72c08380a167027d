"""``eduml``: a command-line client of the gateway's HTTP API.

``main`` holds the commands, ``client`` every HTTP call, ``views`` the rich
tables, ``progress`` a job followed through its states, ``predictions`` the
CSV read into instances and answers written back, ``watch`` the live tables.
"""
