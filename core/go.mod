module github.com/cidstore/cidstore/core

go 1.26
