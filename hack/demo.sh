#!/usr/bin/env bash
# make demo: a local control plane, the operator with an embedded IdentityStore and
# the outbox, and the samples, so that a newcomer can watch Users reach their
# states without a cluster. Ctrl-C stops everything and cleans up.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
demo="${root}/bin/demo"
export KUBECONFIG="${demo}/kubeconfig"
rm -rf "${demo}"
mkdir -p "${demo}"

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "Stopping the demo..."
  for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
  echo "Stopped. Logs were in ${demo}."
}
trap cleanup EXIT
# Ctrl-C is how the demo ends, not a failure: exit 0 so make reports no error.
trap 'exit 0' INT TERM

echo "==> Building the operator and the local control plane runner"
go build -o bin/manager .
go build -o bin/localcluster ./hack/localcluster
go build -o bin/outboxlink ./hack/outboxlink

echo "==> Starting a local control plane (kube-apiserver ${KUBE_VERSION:-} and etcd)"
bin/localcluster --write-kubeconfig "${KUBECONFIG}" >"${demo}/controlplane.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  [[ -f "${KUBECONFIG}" ]] && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then cat "${demo}/controlplane.log"; exit 1; fi
  sleep 0.5
done
[[ -f "${KUBECONFIG}" ]] || { echo "the control plane did not start; see ${demo}/controlplane.log"; exit 1; }
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
# The operator's own namespace: token records live there.
kubectl create namespace roster-system >/dev/null

echo "==> Starting the operator (embedded store in ${demo}/data, outbox in ${demo}/outbox)"
bin/manager --namespace=roster-system --data-dir="${demo}/data" --outbox-dir="${demo}/outbox" \
  --metrics-bind-address=0 --health-probe-bind-address=127.0.0.1:18081 \
  --web-bind-address=127.0.0.1:18082 --public-url=http://127.0.0.1:18082 \
  --product-name="Roster demo" \
  >"${demo}/manager.log" 2>&1 &
pids+=($!)

echo "==> Applying config/samples (an embedded IdentityStore first)"
kubectl apply -k config/samples
echo
kubectl wait --for=condition=Ready identitystore/demo --timeout=60s >/dev/null
kubectl get identitystores
echo

# Wait for the settled states, then show them once.
echo "Waiting for the import and the Users to settle..."
for _ in $(seq 1 60); do
  phase=$(kubectl get userimport new-hires -o jsonpath='{.status.phase}')
  [[ "${phase}" =~ ^(Succeeded|PartiallySucceeded|Failed)$ ]] && break
  sleep 1
done
for _ in $(seq 1 60); do
  pending=$(kubectl get users -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -cvE '^(Invited|Active|Inactive)$' || true)
  [[ "${pending}" == "0" ]] && break
  sleep 1
done
kubectl wait --for=condition=Ready groups --all --timeout=60s >/dev/null || true
kubectl get users,groups,userimports
echo
echo "Namespace team-b has a rule of its own in the store (b.example.com addresses, Members and Viewers):"
kubectl get users -n team-b
echo "  eve: $(kubectl get user eve -n team-b -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}')"
echo
kubectl get users --field-selector status.phase=Inactive
echo
echo "The sample import's last row is not an email address; its failure is reported by row:"
kubectl get userimport new-hires -o jsonpath='{range .status.failures[*]}  {.message}{"\n"}{end}'
echo

# The operator wrote each invitation into the outbox; show Ada's link, which
# a real deployment would only ever send by email.
link=""
for _ in $(seq 1 30); do
  link=$(bin/outboxlink --outbox "${demo}/outbox" --to ada@example.com 2>/dev/null || true)
  [[ -n "${link}" ]] && break
  sleep 1
done

cat <<MSG
The demo is running.
  kubeconfig:   export KUBECONFIG=${KUBECONFIG}
  invitation:   Ada's invitation email is in ${demo}/outbox. Open its link,
                choose a password, and watch ada turn Active:
                  ${link:-(not sent yet: see ${demo}/manager.log)}
                  kubectl get users -w
  account page: once Ada has a password, sign in at http://127.0.0.1:18082/account
                to change her details or her password.
  try:          kubectl annotate user ada iam.roster.dev/reset-password="\$(date +%s)" --overwrite
                bin/outboxlink --outbox ${demo}/outbox --to ada@example.com --kind reset
                kubectl annotate user grace iam.roster.dev/resend-invitation="\$(date +%s)" --overwrite
                kubectl patch user alan --type=merge -p '{"spec":{"deactivated":false}}'
                kubectl get users --field-selector status.phase=Invited
                kubectl label user grace team=engines   # grace joins the engineering Group
                kubectl get groups engineering -o jsonpath='{.status.members}'
  logs:         ${demo}/manager.log, ${demo}/controlplane.log
Press Ctrl-C to stop the operator and the control plane.
MSG

if [[ -n "${DEMO_EXIT:-}" ]]; then exit 0; fi
wait "${pids[@]}"
