package wal_test

// wantAsync says whether OS files should be AsyncSyncers (aio_linux.go).
const wantAsync = true
