package wire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// Mutual TLS between the host and each plugin, for go-plugin's gRPC
// connection and for the session alike. go-plugin's AutoMTLS makes two
// P-521 keys per plugin start (several ms each, then slow signatures);
// here the host makes one P-256 key for itself (an Identity, once per
// loader) and one per plugin (a Pair), and hands the plugin its key and
// both certificates over a pipe only the two processes hold, never
// through the environment or a file. Each side trusts exactly the other's
// certificate.

// EnvTLSFD names the variable that tells a plugin on which inherited file
// descriptor its TLS material is (Pair.WriteTo's, read by ReadPluginTLS).
const EnvTLSFD = "KLDSIM_PLUGIN_TLS_FD"

// certLife is how long the certificates are valid: longer than any
// plugin process lives.
const certLife = 20 * 365 * 24 * time.Hour

// serverName is the name both certificates carry and both sides check.
const serverName = "localhost"

// newCert makes an ECDSA P-256 key and a self-signed certificate for it,
// good for both ends of a TLS connection.
func newCert(cn string) (tls.Certificate, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"kldsim"}},
		DNSNames:              []string{serverName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certLife),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, certPEM, keyPEM, nil
}

func poolOf(c tls.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Leaf)
	return p
}

// Identity is the host's key and certificate, shown to every plugin it
// starts. Make one with NewIdentity and share it; it is safe for
// concurrent use.
type Identity struct {
	cert tls.Certificate
	pem  []byte
}

// NewIdentity makes the host's key and certificate.
func NewIdentity() (*Identity, error) {
	c, p, _, err := newCert("kldsim host")
	if err != nil {
		return nil, fmt.Errorf("host TLS identity: %w", err)
	}
	return &Identity{cert: c, pem: p}, nil
}

// Pair is the mutual TLS of one plugin process: the host's identity and a
// key and certificate made for the plugin.
type Pair struct {
	host            *Identity
	plugin          tls.Certificate
	pluginPEM, keys []byte
}

// NewPair makes a plugin's key and certificate.
func (id *Identity) NewPair() (*Pair, error) {
	c, certPEM, keyPEM, err := newCert("kldsim plugin")
	if err != nil {
		return nil, fmt.Errorf("plugin TLS certificate: %w", err)
	}
	return &Pair{host: id, plugin: c, pluginPEM: certPEM, keys: keyPEM}, nil
}

// ClientConfig is the host's end of go-plugin's gRPC connection (go-plugin's
// ClientConfig.TLSConfig): it shows the host's certificate and trusts the
// plugin's only.
func (p *Pair) ClientConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.host.cert},
		RootCAs:      poolOf(p.plugin),
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS13,
	}
}

// sessionConfig is the host's end of the session: it serves with the
// host's certificate and accepts the plugin's only.
func (p *Pair) sessionConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.host.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    poolOf(p.plugin),
		MinVersion:   tls.VersionTLS13,
	}
}

// WriteTo writes what the plugin reads on its EnvTLSFD descriptor: its
// certificate and key, then the host's certificate, PEM.
func (p *Pair) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(bytes.Join([][]byte{p.pluginPEM, p.keys, p.host.pem}, nil))
	return int64(n), err
}

// PluginTLS is the plugin's end: its key and certificate, and the host's
// certificate, the only one it trusts.
type PluginTLS struct {
	own  tls.Certificate
	host *x509.CertPool
}

// ReadPluginTLS reads what Pair.WriteTo wrote.
func ReadPluginTLS(r io.Reader) (*PluginTLS, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("reading the TLS material from the host: %w", err)
	}
	var certs [][]byte
	var key []byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			certs = append(certs, pem.EncodeToMemory(b))
		case "EC PRIVATE KEY":
			key = pem.EncodeToMemory(b)
		}
	}
	if len(certs) != 2 || key == nil {
		return nil, errors.New("the host's TLS material is not two certificates and a key")
	}
	own, err := tls.X509KeyPair(certs[0], key)
	if err != nil {
		return nil, fmt.Errorf("the plugin's TLS key: %w", err)
	}
	host := x509.NewCertPool()
	if !host.AppendCertsFromPEM(certs[1]) {
		return nil, errors.New("the host's TLS certificate does not parse")
	}
	return &PluginTLS{own: own, host: host}, nil
}

// ServerConfig is the plugin's end of go-plugin's gRPC connection
// (go-plugin's ServeConfig.TLSProvider): it serves with the plugin's
// certificate and accepts the host's only.
func (t *PluginTLS) ServerConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{t.own},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    t.host,
		MinVersion:   tls.VersionTLS13,
	}
}

// sessionConfig is the plugin's end of the session: it dials with the
// plugin's certificate and trusts the host's only.
func (t *PluginTLS) sessionConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{t.own},
		RootCAs:      t.host,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS13,
	}
}
