#!/bin/sh
# One container, one service instance: unless told otherwise, the instance is
# named after the container's host name (its id: unique per replica, so two
# scheduler replicas never share a leader-election identity), and the health
# check inside the same container (`python -m servicekit.healthcheck`)
# defaults to the same host name.
set -eu
: "${PODBUS_INSTANCE:=$(hostname)}"
export PODBUS_INSTANCE
exec "$@"
