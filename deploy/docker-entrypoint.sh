#!/bin/sh
# Container entry point: `serve` (the default command) first fetches the weights into the
# empty volume of a first start, so `docker compose up` on a fresh machine is all it takes.
# Any other command runs as `triposg <command>` (for example `generate` or `check-weights`).
set -eu

[ $# -gt 0 ] || set -- serve
if [ "$1" = serve ]; then
  triposg-ensure-weights
fi
exec triposg "$@"
