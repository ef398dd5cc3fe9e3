package config

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// parseStd is what Parse gives, by encoding/json: the reference.
func parseStd(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, err
	}
	if dec.More() || dec.InputOffset() != int64(len(bytes.TrimRight(b, " \t\r\n"))) {
		return Config{}, errTrailing
	}
	if c.Agents != nil && (c.AgentAddress != "" || c.AgentProtocol != "") {
		return Config{}, ErrInvalid
	}
	return c, nil
}

var errTrailing = json.Unmarshal([]byte("{} x"), &struct{}{})

// FuzzParse: the one-pass decoder agrees with encoding/json (with
// DisallowUnknownFields) on which files are valid and on what they say.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `{"agent_address":"unix:///x.sock","timeout":"500ms","log_max_size":"1MiB","log_max_backups":2,"agent_uid":-1}`,
		`{"fail_allow_namespaces":["a",null,"b"],"fail_allow_namespace_regex":[],"audit_namespaces":null,"mode":"audit"}`,
		`{"agents":[{"name":"t","address":"unix:///t.sock","protocol":"tetragon","agent_uid":0,"required":false},null]}`,
		`{"agents":[{"name":"a","address":"x"},{"name":"b"}],"agents":[{"name":"c"}]}`,
		`{"fail_allow_namespaces":["a","b"],"fail_allow_namespaces":[null]}`,
		`{"Agent_Address":"x","TIMEOUT":"1s"}`, `{"agent_adress":"x"}`, `{"agents":[{"nam":"x"}]}`,
		`{"timeout":5}`, `{"agent_uid":1.5}`, `{"agent_uid":"1"}`, `{"log_max_size":null}`, `{"log_max_size":10}`,
		`{"agents":[{"required":"yes"}]}`, `{"agents":{}}`, `{"agents":[1]}`, `[]`, `{"mode":"\u0061udit"}`, `{} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Parse(b)
		want, stdErr := parseStd(b)
		if stdErr == errTrailing {
			return // encoding/json's Decoder stops after one value; Parse refuses what follows
		}
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("%q: Parse: %v; encoding/json: %v", b, err, stdErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nParse         %+v\nencoding/json %+v", b, got, want)
		}
	})
}
