// Package tests holds CIDStore's cross-module tests: the model-based
// conformance suite run against every storage adapter, crash tests that
// kill real processes, and end-to-end tests.
package tests
