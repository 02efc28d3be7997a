#!/bin/sh
# Makes sure the weights folder ($TRIPOSG_WEIGHTS) holds the models, downloading them when it
# does not: on a container's first start, in the Kubernetes init container and before the
# systemd service starts. A complete folder is left alone, so restarts need no network.
set -eu

if triposg check-weights >/dev/null 2>&1; then
  exit 0
fi
echo "triposg: the weights in ${TRIPOSG_WEIGHTS:-pretrained_weights} are missing or incomplete;" \
  "downloading them now (about 8 GB, once; progress follows)" >&2
exec triposg download
