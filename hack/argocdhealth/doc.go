// Package argocdhealth tests config/argocd/health.lua, the Argo CD health
// check for every iam.roster.dev kind, the way Argo CD tests its own: each
// case of config/argocd/health_test.yaml runs the script on an object from
// config/argocd/testdata in a Lua state set up as Argo CD sets up its own.
package argocdhealth
