// Command grpcfloor makes one grpc.health.v1 Check call with grpc-go to the
// agent on each unix socket it is given, all at once, and exits: the least
// any grpc-go hook can cost, for one agent or several.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	check := func(sock string) error {
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	socks := os.Args[1:]
	errs := make([]error, len(socks))
	if len(socks) == 1 {
		errs[0] = check(socks[0])
	} else {
		var wg sync.WaitGroup
		for i, s := range socks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = check(s)
			}()
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
