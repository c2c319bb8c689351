#!/usr/bin/env bash
# Builds kube-apiserver and etcd from source through the Go module proxy, so a
# machine with only Go can run a real control plane (for envtest, make demo and
# make bench). Binaries are cached under bin/k8s/<version>-<os>-<arch>/ and the
# directory is printed on stdout; set KUBEBUILDER_ASSETS to it.
#
#   hack/build-control-plane.sh [kubernetes-version] [etcd-version]
set -euo pipefail

KUBE_VERSION="${1:-${KUBE_VERSION:-1.37.0}}"
ETCD_VERSION="${2:-${ETCD_VERSION:-3.7.0}}"
KUBE_VERSION="${KUBE_VERSION#v}"
ETCD_VERSION="${ETCD_VERSION#v}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
os="$(go env GOOS)"
arch="$(go env GOARCH)"
dest="${root}/bin/k8s/${KUBE_VERSION}-${os}-${arch}"
work="${root}/bin/.build"
mkdir -p "${dest}" "${work}"

log() { printf '%s\n' "$*" >&2; }

# Every staging module of k8s.io/kubernetes is published as k8s.io/<name>
# v0.<minor>.<patch>; the main module's go.mod points at ./staging, which only
# works inside its own repository, so the wrapper pins each one to its release.
staging_replaces() {
  local gomod minor patch
  gomod="$(go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  minor="$(echo "${KUBE_VERSION}" | cut -d. -f2)"
  patch="$(echo "${KUBE_VERSION}" | cut -d. -f3)"
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9./-]*\) => \./staging/src/.*#\1#p' "${gomod}" | sort -u |
    while read -r mod; do
      printf 'replace %s => %s v0.%s.%s\n' "${mod}" "${mod}" "${minor}" "${patch}"
    done
}

build_apiserver() {
  local out="${dest}/kube-apiserver" dir="${work}/kube-apiserver-${KUBE_VERSION}"
  if [[ -x "${out}" ]]; then return; fi
  log "Building kube-apiserver v${KUBE_VERSION} from source (several minutes on a cold cache)..."
  mkdir -p "${dir}"
  cat >"${dir}/go.mod" <<MOD
module roster.dev/build/kube-apiserver

go 1.26

require k8s.io/kubernetes v${KUBE_VERSION}

$(staging_replaces)
MOD
  cat >"${dir}/tools.go" <<'SRC'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
SRC
  local minor pkg=k8s.io/component-base/version
  minor="$(echo "${KUBE_VERSION}" | cut -d. -f2)"
  local ldflags="-s -w -X ${pkg}.gitVersion=v${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v${KUBE_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
  (
    cd "${dir}"
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    GOFLAGS=-mod=mod go build -trimpath -ldflags "${ldflags}" -o "${out}.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  )
  mv "${out}.tmp" "${out}"
}

build_etcd() {
  local out="${dest}/etcd" dir="${work}/etcd-${ETCD_VERSION}"
  if [[ -x "${out}" ]]; then return; fi
  log "Building etcd v${ETCD_VERSION} from source..."
  mkdir -p "${dir}"
  cat >"${dir}/go.mod" <<MOD
module roster.dev/build/etcd

go 1.26

require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
MOD
  cat >"${dir}/main.go" <<'SRC'
// Command etcd runs the etcd server, for a local control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
SRC
  (
    cd "${dir}"
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v${ETCD_VERSION}" -o "${out}.tmp" .
  )
  mv "${out}.tmp" "${out}"
}

build_etcd
build_apiserver
echo "${dest}"
