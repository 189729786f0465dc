#!/bin/bash
# Ray head and the Ludus queue consumer in one container.
#
# The consumer is `ludus head` (the queue worker with Ray executors, Ray gauges and, with
# LUDUS_AUTOSCALE_ENABLED, backlog autoscaling); LUDUS_HEAD_COMMAND overrides it (e.g. "ludus worker").
#
# On KubeRay (annotation ray.io/overwrite-container-cmd: "true") the operator's generated `ray start`
# command arrives in KUBERAY_GEN_RAY_START_CMD; elsewhere (k8s/overlays/keda, docker run) a default
# head command is used. Ray runs in the background (--block keeps its process alive as a handle),
# the consumer starts once the GCS answers, and the container ends when either of them ends, so
# Kubernetes restarts the pair together instead of leaving a head without its consumer.
set -uo pipefail

ulimit -n "${RAY_START_ULIMIT_OPEN_FILES:-65536}" 2>/dev/null || true
port="${RAY_PORT:-6379}"
default_cmd="ray start --head --block --port=${port} --dashboard-host=0.0.0.0 \
--num-cpus=${LUDUS_HEAD_NUM_CPUS:-0} --num-gpus=0 \
--metrics-export-port=${RAY_METRICS_EXPORT_PORT:-8090} --disable-usage-stats"
start_cmd="${KUBERAY_GEN_RAY_START_CMD:-$default_cmd}"
case " ${start_cmd} " in *" --block "*) ;; *) start_cmd="${start_cmd} --block" ;; esac

# eval, not plain expansion: the generated command quotes its --resources JSON.
eval "exec ${start_cmd}" &
ray_pid=$!

for _ in $(seq 1 "${LUDUS_HEAD_WAIT_S:-300}"); do
    ray health-check --address "127.0.0.1:${port}" >/dev/null 2>&1 && break
    kill -0 "${ray_pid}" 2>/dev/null || { echo "ray head exited before it became healthy" >&2; exit 1; }
    sleep 1
done

export LUDUS_RAY_ADDRESS="${LUDUS_RAY_ADDRESS:-127.0.0.1:${port}}"
# shellcheck disable=SC2086  # a plain command line, split on spaces on purpose
set -- ${LUDUS_HEAD_COMMAND:-ludus head}
"$@" &
worker_pid=$!

stop_all() {
    # The consumer first: it stops taking messages and finishes or releases its jobs (nack -> requeue).
    kill -TERM "${worker_pid}" 2>/dev/null
    wait "${worker_pid}" 2>/dev/null
    ray stop --grace-period "${LUDUS_RAY_STOP_GRACE_S:-20}" >/dev/null 2>&1
    wait "${ray_pid}" 2>/dev/null
}
trap 'stop_all; exit 0' TERM INT

wait -n "${ray_pid}" "${worker_pid}"
rc=$?
echo "a head process exited (rc=${rc}); stopping the other" >&2
stop_all
exit "${rc}"
