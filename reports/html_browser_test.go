package reports

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVerdictInFirstScreen renders the page in headless Chromium, where it
// is installed, and checks that the verdict line ends within the first
// 1280×720 screen. The product page has no script; the test adds one to
// its copy, which measures the layout and writes the answer into the
// title that --dump-dom prints.
func TestVerdictInFirstScreen(t *testing.T) {
	var browser string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("Chromium is not installed (chromium, chromium-browser or google-chrome): the layout is checked only by the HTML structure tests")
	}
	base := htmlRun()
	cur := htmlRun()
	for i, c := range cur.Cases {
		if c.State == StatePassed {
			cur.Cases[i].State, cur.Cases[i].Message = StateFailed, "now broken"
			break
		}
	}
	var buf bytes.Buffer
	if err := cur.WriteHTML(&buf, &base); err != nil {
		t.Fatal(err)
	}
	probe := `<script>addEventListener("load", () => {
  const r = document.querySelector("#verdict .verdict").getBoundingClientRect();
  document.title = "verdict-bottom=" + Math.round(r.bottom) + " screen=" + innerHeight;
});</script></body>`
	page := strings.Replace(buf.String(), "</body>", probe, 1)
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,720",
		"--virtual-time-budget=2000", "--dump-dom", "file://"+file).Output()
	if err != nil {
		t.Fatalf("%s: %v", browser, err)
	}
	dom := string(out)
	i := strings.Index(dom, "verdict-bottom=")
	if i < 0 {
		t.Fatalf("no layout answer in the DOM:\n%.500s", dom)
	}
	var bottom, screen int
	if _, err := fmt.Sscanf(dom[i:], "verdict-bottom=%d screen=%d", &bottom, &screen); err != nil {
		t.Fatal(err)
	}
	if bottom <= 0 || bottom > screen {
		t.Errorf("the verdict ends at y=%d, below the first screen (%d)", bottom, screen)
	}
}
