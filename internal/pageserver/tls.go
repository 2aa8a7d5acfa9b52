package pageserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// TLS is CRIU's TLS configuration (--tls, --tls-cacert, --tls-cacrl,
// --tls-cert, --tls-key, --tls-no-cn-verify). Both sides show a certificate
// and check the other's against the CA: the client also checks that the
// server's certificate names the address it dialed, unless NoCNVerify.
type TLS struct {
	Enabled    bool
	CACert     string
	CACRL      string
	Cert       string
	Key        string
	NoCNVerify bool
}

// CRIU's defaults (criu/tls.c, SYSCONFDIR /etc).
const (
	DefaultCACert = "/etc/pki/CA/cacert.pem"
	DefaultCACRL  = "/etc/pki/CA/cacrl.pem"
	DefaultCert   = "/etc/pki/criu/cert.pem"
	DefaultKey    = "/etc/pki/criu/private/key.pem"
)

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// load reads the certificate, the CA pool and the revocation list.
func (o TLS) load() (tls.Certificate, *x509.CertPool, *x509.RevocationList, error) {
	certFile, keyFile := orDefault(o.Cert, DefaultCert), orDefault(o.Key, DefaultKey)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, nil, nil, fmt.Errorf("TLS: loading the certificate %s with key %s: %w (set --tls-cert and --tls-key)", certFile, keyFile, err)
	}
	var pool *x509.CertPool
	caFile := orDefault(o.CACert, DefaultCACert)
	pem, err := os.ReadFile(caFile)
	switch {
	case err == nil:
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cert, nil, nil, fmt.Errorf("TLS: %s holds no PEM certificate (--tls-cacert)", caFile)
		}
	case o.CACert == "" && errors.Is(err, os.ErrNotExist):
		// As CRIU: no CA file at the default place means the system's.
		if pool, err = x509.SystemCertPool(); err != nil {
			return cert, nil, nil, fmt.Errorf("TLS: no %s and no system certificates: %w (set --tls-cacert)", caFile, err)
		}
	default:
		return cert, nil, nil, fmt.Errorf("TLS: reading the CA certificate: %w (--tls-cacert)", err)
	}
	var crl *x509.RevocationList
	crlFile := orDefault(o.CACRL, DefaultCACRL)
	if b, err := os.ReadFile(crlFile); err == nil {
		if crl, err = parseCRL(b); err != nil {
			return cert, nil, nil, fmt.Errorf("TLS: %s: %w (--tls-cacrl)", crlFile, err)
		}
	} else if o.CACRL != "" {
		return cert, nil, nil, fmt.Errorf("TLS: reading the revocation list: %w (--tls-cacrl)", err)
	}
	return cert, pool, crl, nil
}

func parseCRL(b []byte) (*x509.RevocationList, error) {
	if blk, _ := pemDecode(b); blk != nil {
		b = blk
	}
	return x509.ParseRevocationList(b)
}

// revoked refuses a peer whose certificate the revocation list names.
func revoked(crl *x509.RevocationList) func([][]byte, [][]*x509.Certificate) error {
	if crl == nil {
		return nil
	}
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		for _, ch := range chains {
			for _, c := range ch {
				for _, r := range crl.RevokedCertificateEntries {
					if c.SerialNumber.Cmp(r.SerialNumber) == 0 && c.Issuer.String() == crl.Issuer.String() {
						return fmt.Errorf("certificate %q (serial %s) is revoked", c.Subject.CommonName, c.SerialNumber)
					}
				}
			}
		}
		return nil
	}
}

// ClientConfig is the configuration to dial host; nil when TLS is off.
func (o TLS) ClientConfig(host string) (*tls.Config, error) {
	if !o.Enabled {
		return nil, nil
	}
	cert, pool, crl, err := o.load()
	if err != nil {
		return nil, err
	}
	c := &tls.Config{
		// Shown whatever CAs the server names, so that a server that does
		// not trust it says why.
		GetClientCertificate:  func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		RootCAs:               pool,
		ServerName:            host,
		MinVersion:            tls.VersionTLS12,
		VerifyPeerCertificate: revoked(crl),
	}
	if o.NoCNVerify {
		// The chain is still checked, only not the name in it.
		c.InsecureSkipVerify = true
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			chains, err := verifyChain(raw, pool, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if check := revoked(crl); check != nil {
				return check(raw, chains)
			}
			return nil
		}
	}
	return c, nil
}

// ServerConfig is the configuration of a page server; nil when TLS is off.
// Clients must show a certificate signed by the CA.
func (o TLS) ServerConfig() (*tls.Config, error) {
	if !o.Enabled {
		return nil, nil
	}
	cert, pool, crl, err := o.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		// One session per connection; and CRIU's reader (GnuTLS) answers
		// a TLS 1.3 session ticket with EAGAIN where it waits for data.
		SessionTicketsDisabled: true,
		// Full records from the first: a lazy session's answers are
		// read by CRIU record by record.
		DynamicRecordSizingDisabled: true,
		MinVersion:                  tls.VersionTLS12,
		VerifyPeerCertificate:       revoked(crl),
	}, nil
}

func verifyChain(raw [][]byte, pool *x509.CertPool, usage x509.ExtKeyUsage) ([][]*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, errors.New("the peer showed no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	return certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
}

// pemDecode returns the DER of the first PEM block of b, if b is PEM.
func pemDecode(b []byte) ([]byte, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, nil
	}
	return blk.Bytes, nil
}
