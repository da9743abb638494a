"""The one service layer: every interface (the web application, the command line) checks
permission, loads, changes and audits a record through these functions, on one database
with one audit trail. Nothing here imports an interface."""
