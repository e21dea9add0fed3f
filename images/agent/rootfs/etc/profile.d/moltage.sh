# Login shells of the VM user: the pinned Node 24 and the openclaw CLI on PATH.
export PATH="/usr/local/bin:$PATH"
export LANG=C.UTF-8
export OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1
