// Command cidstore is the CIDStore server and its command-line client.
//
//	cidstore serve              run a writer, or with --role reader a read-only replica
//	                            (settings: cidstore help settings)
//	cidstore put KEY VALUE      insert a pair over ZeroMQ
//	cidstore get KEY            print KEY's values
//	cidstore del KEY [VALUE]    delete a key or one value
//	cidstore import FILE        bulk-insert "KEY VALUE" lines
//	cidstore stats              print the server's METRICS
//	cidstore wal-repair PATH    repair a WAL file
//	cidstore version
package main

import (
	"os"

	"github.com/cidstore/cidstore/app"
	"github.com/gin-gonic/gin"
)

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	// gin's debug mode prints route tables to stdout; the service logs
	// through zap instead.
	gin.SetMode(gin.ReleaseMode)
	cli := &app.CLI{
		Version:   version,
		Stdin:     os.Stdin,
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		LookupEnv: os.LookupEnv,
		WALRepair: app.RepairWAL,
	}
	os.Exit(cli.Run(os.Args[1:]))
}
