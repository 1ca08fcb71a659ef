"""Stage 5, suite: the pytest plugin that runs the claims.

`plugin` (options, fixtures, header), `checks` (a verdict made a test result and a record), `runs`
(the models of a session, loaded and freed in turn) and `hooks` (the claims folder and the
hookspecs between the plugin and the report's collector).
"""
