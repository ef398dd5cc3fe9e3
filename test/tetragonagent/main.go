// Command tetragonagent serves Tetragon's FineGuidanceSensors API, built
// from Tetragon's own published Go API module, on a unix socket: the peer
// podhook's tetragon protocol is tested against. RuntimeHook records each
// request as one JSON line (protojson, Tetragon's field names) and answers
// an empty RuntimeHookResponse, as Tetragon's agent does, or a gRPC error
// when -error-code says so. It is a test program, never shipped.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cilium/tetragon/api/v1/tetragon"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

type server struct {
	tetragon.UnimplementedFineGuidanceSensorsServer
	mu     sync.Mutex
	events *os.File
	code   codes.Code
}

func (s *server) RuntimeHook(_ context.Context, req *tetragon.RuntimeHookRequest) (*tetragon.RuntimeHookResponse, error) {
	b, err := protojson.Marshal(req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.events.Write(append(b, '\n'))
	s.mu.Unlock()
	if s.code != codes.OK {
		return nil, status.Errorf(s.code, "tetragonagent configured to fail with %s", s.code)
	}
	return &tetragon.RuntimeHookResponse{}, nil
}

// GetVersion answers as Tetragon's agent does: its version.
func (s *server) GetVersion(context.Context, *tetragon.GetVersionRequest) (*tetragon.GetVersionResponse, error) {
	return &tetragon.GetVersionResponse{Version: "v1.6.0-tetragonagent"}, nil
}

func main() {
	socket := flag.String("socket", "", "unix socket to serve on")
	events := flag.String("events", "", "file the requests are appended to, one JSON line each")
	errorCode := flag.String("error-code", "", "answer every call with this gRPC status code")
	flag.Parse()
	f, err := os.OpenFile(*events, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := &server{events: f}
	if *errorCode != "" {
		if err := s.code.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(*errorCode)))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	lis, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	g := grpc.NewServer()
	tetragon.RegisterFineGuidanceSensorsServer(g, s)
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		g.Stop()
	}()
	g.Serve(lis)
}
