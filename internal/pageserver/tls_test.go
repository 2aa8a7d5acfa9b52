package pageserver

import (
	"net"
	"strings"
	"testing"

	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/testpki"
)

// tlsSession runs one page server session with server TLS options and one
// client, which sends a page of task 1 and closes.
func tlsSession(t *testing.T, server, client TLS) (files []string, clientErr, serverErr error) {
	t.Helper()
	sc, err := server.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := newDir(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := ServeOne(ln, dir, sc)
		done <- err
	}()
	clientErr = func() error {
		cc, err := client.ClientConfig("127.0.0.1")
		if err != nil {
			return err
		}
		c, err := Dial(ln.Addr().String(), cc)
		if err != nil {
			return err
		}
		s, _, err := c.Open(Task(1))
		if err != nil {
			c.Abort()
			return err
		}
		s.Add(pagemap.Entry{Vaddr: 0x1000, NrPages: 1, Flags: pagemap.FlagPresent})
		s.Write(page(1))
		s.Close()
		return c.Close()
	}()
	serverErr = <-done
	return names(t, dir), clientErr, serverErr
}

func TestTLS(t *testing.T) {
	ca := testpki.New(t, "gockpt test CA")
	srvCert, srvKey := ca.Issue(t, "server", "127.0.0.1")
	cliCert, cliKey := ca.Issue(t, "client", "client")
	rogue := testpki.New(t, "rogue CA")
	rogueCert, rogueKey := rogue.Issue(t, "rogue", "127.0.0.1")
	caFile := ca.CA()
	server := TLS{Enabled: true, CACert: caFile, Cert: srvCert, Key: srvKey}
	client := TLS{Enabled: true, CACert: caFile, Cert: cliCert, Key: cliKey}

	t.Run("good", func(t *testing.T) {
		files, cerr, serr := tlsSession(t, server, client)
		if cerr != nil || serr != nil || len(files) != 2 {
			t.Fatalf("client %v, server %v, files %v", cerr, serr, files)
		}
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		bad := client
		bad.Cert, bad.Key = rogueCert, rogueKey
		files, cerr, serr := tlsSession(t, server, bad)
		if cerr == nil || serr == nil || len(files) != 0 {
			t.Fatalf("client %v, server %v, files %v", cerr, serr, files)
		}
		if !strings.HasPrefix(serr.Error(), "page server: TLS handshake with 127.0.0.1:") ||
			!strings.Contains(serr.Error(), "certificate signed by unknown authority") ||
			!strings.HasSuffix(serr.Error(), ": refused, nothing was written") {
			t.Fatalf("server error: %v", serr)
		}
	})
	t.Run("server certificate of another CA", func(t *testing.T) {
		bad := server
		bad.Cert, bad.Key = rogueCert, rogueKey
		files, cerr, serr := tlsSession(t, bad, client)
		if cerr == nil || serr == nil || len(files) != 0 {
			t.Fatalf("client %v, server %v, files %v", cerr, serr, files)
		}
		want := "TLS handshake: tls: failed to verify certificate: x509: certificate signed by unknown authority"
		if !strings.Contains(cerr.Error(), want) || !strings.HasSuffix(cerr.Error(), ": check --tls-cacert, --tls-cert and --tls-key on both sides") {
			t.Fatalf("client error %v, want it to contain %q", cerr, want)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		dir := newDir(t)
		sc, _ := server.ServerConfig()
		done := make(chan error, 1)
		go func() { _, _, err := ServeOne(ln, dir, sc); done <- err }()
		// A plain TCP client speaking the protocol without TLS.
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, _ := newClient(conn, "srv", nil)
		c.Open(Task(1))
		c.Abort()
		if err := <-done; err == nil || !strings.Contains(err.Error(), "TLS handshake") {
			t.Fatalf("server error %v", err)
		}
		if got := names(t, dir); len(got) != 0 {
			t.Fatalf("files %v", got)
		}
	})
	t.Run("revoked client", func(t *testing.T) {
		srv := server
		srv.CACRL = ca.Revoke(t, 3) // the client's serial
		files, cerr, serr := tlsSession(t, srv, client)
		if cerr == nil || serr == nil || len(files) != 0 {
			t.Fatalf("client %v, server %v, files %v", cerr, serr, files)
		}
		if !strings.Contains(serr.Error(), `certificate "client" (serial 3) is revoked`) {
			t.Fatalf("server error: %v", serr)
		}
	})
	t.Run("no-cn-verify", func(t *testing.T) {
		other, otherKey := ca.Issue(t, "other", "somewhere.else")
		srv := server
		srv.Cert, srv.Key = other, otherKey
		// The certificate is valid for 127.0.0.1 by IP; dial it by a
		// name it does not carry.
		cc := client
		cfg, _ := cc.ClientConfig("not-this-host")
		if cfg.ServerName != "not-this-host" || cfg.InsecureSkipVerify {
			t.Fatalf("config %+v", cfg)
		}
		cc.NoCNVerify = true
		cfg, _ = cc.ClientConfig("not-this-host")
		if !cfg.InsecureSkipVerify || cfg.VerifyPeerCertificate == nil {
			t.Fatal("--tls-no-cn-verify must still verify the chain")
		}
		files, cerr, serr := tlsSession(t, srv, cc)
		if cerr != nil || serr != nil || len(files) != 2 {
			t.Fatalf("client %v, server %v, files %v", cerr, serr, files)
		}
	})
	t.Run("missing files", func(t *testing.T) {
		_, err := TLS{Enabled: true, Cert: "/nonexistent/cert.pem", Key: "/nonexistent/key.pem"}.ClientConfig("x")
		want := "TLS: loading the certificate /nonexistent/cert.pem with key /nonexistent/key.pem: open /nonexistent/cert.pem: no such file or directory (set --tls-cert and --tls-key)"
		if err == nil || err.Error() != want {
			t.Fatalf("error %v, want %q", err, want)
		}
	})
}
