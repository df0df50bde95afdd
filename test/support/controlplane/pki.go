package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func newCA(cn string) (*keyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &keyPair{cert, key}, err
}

type certSpec struct {
	cn     string
	orgs   []string
	dns    []string
	ips    []net.IP
	server bool
}

func (ca *keyPair) issue(s certSpec) (*keyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if s.server {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: s.cn, Organization: s.orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usage,
		DNSNames:     s.dns,
		IPAddresses:  s.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &keyPair{cert, key}, err
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// write stores base.crt and base.key under dir.
func (kp *keyPair) write(dir, base string) error {
	k, err := keyPEM(kp.key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, base+".crt"), certPEM(kp.cert), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, base+".key"), k, 0o600)
}

func loadKeyPair(dir, base string) (*keyPair, error) {
	cb, err := os.ReadFile(filepath.Join(dir, base+".crt"))
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(filepath.Join(dir, base+".key"))
	if err != nil {
		return nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, errors.New("bad PEM in " + base)
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("key is not a signer")
	}
	return &keyPair{cert, signer}, nil
}

// kubeconfig writes a client-certificate kubeconfig with embedded data (no paths to go stale).
func writeKubeconfig(path, server string, ca *x509.Certificate, client *keyPair, context, namespace string) error {
	k, err := keyPEM(client.key)
	if err != nil {
		return err
	}
	b64 := func(b []byte) string { return base64Std(b) }
	ns := ""
	if namespace != "" {
		ns = "\n    namespace: " + namespace
	}
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[1]s
  user:
    client-certificate-data: %[4]s
    client-key-data: %[5]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s%[6]s
current-context: %[1]s
`, context, server, b64(certPEM(ca)), b64(certPEM(client.cert)), b64(k), ns)
	return os.WriteFile(path, []byte(text), 0o600)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runUser mints a client certificate for another identity (CN = user, O = groups), signed by the
// cluster CA, so tests can act as an operator without cluster-admin and RBAC decides.
func runUser(args []string) error {
	fs := flag.NewFlagSet("user", flag.ContinueOnError)
	dir := fs.String("dir", "", "control plane directory (from up)")
	name := fs.String("name", "", "user name")
	out := fs.String("out", "", "kubeconfig to write")
	context := fs.String("context", "", "context name (default the user name)")
	namespace := fs.String("namespace", "", "the context's namespace")
	var groups stringList
	fs.Var(&groups, "group", "group (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *name == "" || *out == "" {
		return errors.New("--dir, --name and --out are required")
	}
	info, err := readClusterInfo(*dir)
	if err != nil {
		return err
	}
	ca, err := loadKeyPair(filepath.Join(*dir, "pki"), "ca")
	if err != nil {
		return err
	}
	kp, err := ca.issue(certSpec{cn: *name, orgs: groups})
	if err != nil {
		return err
	}
	ctx := *context
	if ctx == "" {
		ctx = *name
	}
	return writeKubeconfig(*out, info.Server, ca.cert, kp, ctx, *namespace)
}
