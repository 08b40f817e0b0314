"""The terminal client's parts that are not commands: how a conversation is drawn
(``conversation``), how a tool call's approval is asked (``approvals``), how a session is
followed through its processes (``follower``) and how sessions are listed (``listing``).
``execlog.cli`` keeps the click commands thin over these."""
