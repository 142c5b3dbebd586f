// Package clientcheck is where scripts/test generates a Go client of
// internal/httpapi/openapi.json with oapi-codegen and compiles it, to show
// the document gives Go generators what they need. It is a module of its
// own, so the generator and its runtime are pinned here (go.mod, go.sum)
// and not in Tessera's dependencies. The generated file is not committed.
package clientcheck
