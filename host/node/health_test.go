package node

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A routing node answers /healthz and /readyz with 200, and its metrics
// name its document's hash, which every node of the network shares.
func TestHealthAndReadinessEndpoints(t *testing.T) {
	tn := newTestNet(t, netSpec{mixes: 2, providers: 1, layers: 2, mu: 200})
	var hashes []string
	for _, tnode := range tn.nodes {
		base := "http://" + tnode.n.MetricsAddr()
		if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, "alive") {
			t.Errorf("/healthz = %d %q", code, body)
		}
		code, body := get(t, base+"/readyz")
		if code != 200 || !strings.HasPrefix(body, "routing: epoch") {
			t.Errorf("/readyz = %d %q", code, body)
		}
		_, m := get(t, base+"/metrics")
		for _, want := range []string{"sotto_document_complete 1", "sotto_document_age_seconds", "sotto_document_info{epoch="} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		i := strings.Index(m, `hash="`)
		if i < 0 {
			t.Fatal("no document hash in /metrics")
		}
		hashes = append(hashes, m[i:i+24])
	}
	for _, h := range hashes[1:] {
		if h != hashes[0] {
			t.Errorf("document hashes differ across nodes: %q", hashes)
		}
	}
}
