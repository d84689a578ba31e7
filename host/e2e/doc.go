// Package e2e holds end-to-end tests that drive real plugin processes
// through host/internal/loader and host/kernel. It has no code of its own.
package e2e
