#!/bin/bash
# A Ray worker node of a Ludus cluster.
#
#   ludus-ray-worker          join the head and block (the container's main process)
#   ludus-ray-worker drain    preStop hook: stop new work reaching this node, give running trials a
#                             moment, then stop Ray; a trial cut short is retried on another node.
#
# On KubeRay the operator's generated command (KUBERAY_GEN_RAY_START_CMD) already carries what the
# group's `resources` and `labels` say (--num-gpus, --resources='{"arch:<a>":1000}', --labels
# ludus.io/arch=<a>) and its rayStartParams. Elsewhere the
# node describes itself from LUDUS_NODE_ARCH (x86_64 | arm64) and LUDUS_NUM_GPUS, and joins
# RAY_HEAD_ADDRESS (host:port of the head's GCS).
set -euo pipefail

if [ "${1:-}" = "drain" ]; then
    addr="${RAY_HEAD_ADDRESS:-${RAY_ADDRESS:-}}"
    ray drain-node ${addr:+--address "${addr}"} --reason DRAIN_NODE_REASON_PREEMPTION \
        --reason-message "pod terminating (scale-down)" \
        --deadline-remaining-seconds "${LUDUS_DRAIN_DEADLINE_S:-90}" >/dev/null 2>&1 || true
    sleep "${LUDUS_DRAIN_WAIT_S:-30}"
    ray stop --grace-period "${LUDUS_RAY_STOP_GRACE_S:-20}" >/dev/null 2>&1 || true
    exit 0
fi

ulimit -n "${RAY_START_ULIMIT_OPEN_FILES:-65536}" 2>/dev/null || true
if [ -n "${KUBERAY_GEN_RAY_START_CMD:-}" ]; then
    start_cmd="${KUBERAY_GEN_RAY_START_CMD}"
else
    : "${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS to the Ray head (host:port)}"
    arch="${LUDUS_NODE_ARCH:-$(uname -m)}"
    case "${arch}" in aarch64) arch=arm64 ;; amd64) arch=x86_64 ;; esac
    start_cmd="ray start --block --address=${RAY_HEAD_ADDRESS} --num-gpus=${LUDUS_NUM_GPUS:-0} \
--resources='{\"arch:${arch}\": 1000}' --labels=ludus.io/arch=${arch} \
--metrics-export-port=${RAY_METRICS_EXPORT_PORT:-8090} --disable-usage-stats"
fi
# eval, not plain expansion: the command quotes its --resources JSON.
eval "exec ${start_cmd}"
