package catchup

import (
	"errors"
	"testing"

	"github.com/podhook/podhook/agentclient"
)

func TestUnderRoot(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"/", "unix:///run/podhook/agent.sock"}:     "unix:///run/podhook/agent.sock",
		{"/host", "unix:///run/podhook/agent.sock"}: "unix:///host/run/podhook/agent.sock",
		{"/host", "/run/x.sock"}:                    "unix:///host/run/x.sock",
	} {
		if got, err := UnderRoot(in[0], in[1]); err != nil || got != want {
			t.Errorf("UnderRoot(%q, %q) = %q, %v; want %q", in[0], in[1], got, err, want)
		}
	}
	if _, err := UnderRoot("/host", "tcp://10.0.0.1:1"); !errors.Is(err, agentclient.ErrAddress) {
		t.Errorf("tcp address: %v, want ErrAddress", err)
	}
}
