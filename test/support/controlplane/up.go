package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// ClusterInfo is what `up` writes to DIR/cluster.json for the test harness.
type ClusterInfo struct {
	Server      string         `json:"server"`
	Dir         string         `json:"dir"`
	Kubeconfig  string         `json:"kubeconfig"`
	CAFile      string         `json:"caFile"`
	Etcd        string         `json:"etcd"`
	AuditLog    string         `json:"auditLog"`
	KwokPort    int            `json:"kwokPort"`
	MetricsPort int            `json:"metricsPort"`
	Nodes       []string       `json:"nodes"`
	Pids        map[string]int `json:"pids"`
	StartupMs   int64          `json:"startupMs"`
}

func readClusterInfo(dir string) (*ClusterInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		return nil, err
	}
	var info ClusterInfo
	return &info, json.Unmarshal(b, &info)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

type supervisor struct {
	dir      string
	self     string
	mu       sync.Mutex
	children []*child
	exited   chan *child
	stopping bool
}

func (s *supervisor) start(name string, args ...string) (*child, error) {
	logPath := filepath.Join(s.dir, "logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.self, append([]string{name}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = s.dir
	// Children die with us, however we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	s.mu.Lock()
	s.children = append(s.children, c)
	s.mu.Unlock()
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if !stopping {
			s.exited <- c
		}
	}()
	return c, nil
}

func (s *supervisor) stopAll() {
	s.mu.Lock()
	s.stopping = true
	kids := append([]*child(nil), s.children...)
	s.mu.Unlock()
	// Reverse order: the API server's clients first, etcd last.
	for i := len(kids) - 1; i >= 0; i-- {
		c := kids[i]
		_ = c.cmd.Process.Signal(syscall.SIGCONT)
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200, the child exits, or the deadline passes.
func waitHTTP(ctx context.Context, client *http.Client, url string, c *child, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("%s exited: %v\n%s", c.name, c.err, tail(c.log, 30))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s after %s: %s\n%s", c.name, url, limit, last, tail(c.log, 30))
}

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: None
  resources: [{ group: coordination.k8s.io, resources: [leases] }]
  users: [system:kube-controller-manager, system:kube-scheduler, kwok]
- level: None
  resources: [{ group: "", resources: [events] }]
  users: [system:kube-controller-manager, system:kube-scheduler, kwok]
- level: Metadata
`

func runUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dirFlag := fs.String("dir", "", "state directory (created)")
	nodesFlag := fs.String("nodes", "node-1,node-2,node-3", "kwok nodes to create")
	watchCache := fs.Bool("watch-cache", true, "serve watches from the API server's cache (false: straight from etcd, so a compacted revision answers 410 Gone at once)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dirFlag == "" {
		return errors.New("--dir is required")
	}
	started := time.Now()
	dir := mustAbs(*dirFlag)
	pki := filepath.Join(dir, "pki")
	for _, d := range []string{pki, filepath.Join(dir, "logs"), filepath.Join(dir, "etcd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	sup := &supervisor{dir: dir, self: self, exited: make(chan *child, 8)}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	// The harness holds our stdin open; when it dies the pipe closes and we tear down.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	defer sup.stopAll()

	ports := map[string]int{}
	for _, n := range []string{"etcd", "etcd-peer", "apiserver", "kwok", "metrics"} {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[n] = p
	}

	certs, err := makeCerts(pki)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}

	etcd, err := sup.start("etcd", "--data-dir", filepath.Join(dir, "etcd"), "--client-port", fmt.Sprint(ports["etcd"]), "--peer-port", fmt.Sprint(ports["etcd-peer"]))
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd"])
	if err := waitHTTP(ctx, http.DefaultClient, etcdURL+"/health", etcd, 60*time.Second); err != nil {
		return err
	}

	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return err
	}
	auditLog := filepath.Join(dir, "audit.log")
	p := func(n string) string { return filepath.Join(pki, n) }
	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports["apiserver"]),
		"--tls-cert-file=" + p("apiserver.crt"), "--tls-private-key-file=" + p("apiserver.key"),
		"--client-ca-file=" + p("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p("sa.pub"), "--service-account-signing-key-file=" + p("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		// Each test harness pins its namespace's pods to its own nodes (the namespace's node-selector
		// annotation): a pod of one test must never be bound to a node another test is deleting.
		"--enable-admission-plugins=PodNodeSelector",
		"--requestheader-client-ca-file=" + p("front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p("front-proxy-client.crt"), "--proxy-client-key-file=" + p("front-proxy-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-client-certificate=" + p("kubelet-client.crt"), "--kubelet-client-key=" + p("kubelet-client.key"),
		"--audit-policy-file=" + policy, "--audit-log-path=" + auditLog, "--audit-log-format=json", "--audit-log-mode=blocking", "--audit-log-maxsize=0",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		fmt.Sprintf("--watch-cache=%t", *watchCache),
		"--v=0",
	}
	api, err := sup.start("apiserver", apiArgs...)
	if err != nil {
		return err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", ports["apiserver"])
	adminTLS, err := tlsClient(certs.ca.cert, certs.admin)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, adminTLS, server+"/readyz", api, 120*time.Second); err != nil {
		return err
	}

	kubeconfigs := map[string]*keyPair{"admin": certs.admin, "controller-manager": certs.kcm, "scheduler": certs.scheduler, "kwok": certs.kwok, "metrics": certs.admin}
	for name, kp := range kubeconfigs {
		if err := writeKubeconfig(filepath.Join(dir, name+".kubeconfig"), server, certs.ca.cert, kp, "test", ""); err != nil {
			return err
		}
	}
	admin := filepath.Join(dir, "admin.kubeconfig")
	nodes := strings.Split(*nodesFlag, ",")

	if err := setupCluster(ctx, admin, ports["metrics"], dir); err != nil {
		return fmt.Errorf("setting up the cluster: %w", err)
	}

	kcm, err := sup.start("controller-manager",
		"--kubeconfig="+filepath.Join(dir, "controller-manager.kubeconfig"),
		"--authentication-kubeconfig="+filepath.Join(dir, "controller-manager.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(dir, "controller-manager.kubeconfig"),
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--leader-elect=false",
		"--controllers="+strings.Join([]string{
			"deployment-controller", "replicaset-controller", "horizontal-pod-autoscaler-controller",
			"garbage-collector-controller", "namespace-controller", "serviceaccount-controller",
			"serviceaccount-token-controller", "resourcequota-controller", "pod-garbage-collector-controller",
			"root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
			// Lifts the not-ready taint admission puts on every new node (and cordons nodes whose kwok stops).
			"node-lifecycle-controller",
		}, ","),
		"--service-account-private-key-file="+p("sa.key"), "--root-ca-file="+p("ca.crt"),
		"--use-service-account-credentials=true",
		"--horizontal-pod-autoscaler-sync-period=1s",
		"--v=0",
	)
	if err != nil {
		return err
	}
	if _, err := sup.start("scheduler",
		"--kubeconfig="+filepath.Join(dir, "scheduler.kubeconfig"),
		"--authentication-kubeconfig="+filepath.Join(dir, "scheduler.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(dir, "scheduler.kubeconfig"),
		"--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false", "--v=0",
	); err != nil {
		return err
	}
	kwokConfig := filepath.Join(dir, "kwok.yaml")
	// An empty file: kwok's defaults, and never a ~/.kwok/kwok.yaml that happens to exist.
	if err := os.WriteFile(kwokConfig, nil, 0o644); err != nil {
		return err
	}
	if _, err := sup.start("kwok",
		"--config="+kwokConfig,
		"--kubeconfig="+filepath.Join(dir, "kwok.kubeconfig"),
		"--manage-all-nodes=true",
		// Node Leases renewed as a kubelet renews them; without them the node-lifecycle controller
		// marks every node NotReady after its grace period and their pods stop being Ready.
		"--node-lease-duration-seconds=40",
		"--node-ip=127.0.0.1", fmt.Sprintf("--node-port=%d", ports["kwok"]),
		fmt.Sprintf("--server-address=127.0.0.1:%d", ports["kwok"]),
		"--tls-cert-file="+p("kwok-serving.crt"), "--tls-private-key-file="+p("kwok-serving.key"),
		"--cidr=10.244.0.0/16",
		"--enable-crds=Stage,Logs,ClusterLogs,Exec,ClusterExec,PortForward,ClusterPortForward,Attach,ClusterAttach",
	); err != nil {
		return err
	}
	if _, err := sup.start("metrics",
		"--kubeconfig="+filepath.Join(dir, "metrics.kubeconfig"),
		fmt.Sprintf("--listen=127.0.0.1:%d", ports["metrics"]),
		"--cert="+p("metrics-serving.crt"), "--key="+p("metrics-serving.key"),
	); err != nil {
		return err
	}

	if err := waitClusterReady(ctx, admin, nodes, sup, kcm); err != nil {
		return err
	}

	info := ClusterInfo{
		Server: server, Dir: dir, Kubeconfig: admin, CAFile: p("ca.crt"), Etcd: etcdURL, AuditLog: auditLog,
		KwokPort: ports["kwok"], MetricsPort: ports["metrics"], Nodes: nodes, Pids: map[string]int{},
		StartupMs: time.Since(started).Milliseconds(),
	}
	sup.mu.Lock()
	for _, c := range sup.children {
		info.Pids[c.name] = c.cmd.Process.Pid
	}
	sup.mu.Unlock()
	b, _ := json.MarshalIndent(info, "", "  ")
	tmp := filepath.Join(dir, "cluster.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "cluster.json")); err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "READY %s\n", filepath.Join(dir, "cluster.json"))
	w.Flush()

	select {
	case <-ctx.Done():
		return nil
	case c := <-sup.exited:
		return fmt.Errorf("%s exited: %v\n%s", c.name, c.err, tail(c.log, 40))
	}
}

func tlsClient(ca *x509.Certificate, client *keyPair) (*http.Client, error) {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	k, err := keyPEM(client.key)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM(client.cert), k)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}, nil
}

type clusterCerts struct {
	ca, admin, kcm, scheduler, kwok *keyPair
}

func makeCerts(dir string) (*clusterCerts, error) {
	ca, err := newCA("runbook-test-ca")
	if err != nil {
		return nil, err
	}
	if err := ca.write(dir, "ca"); err != nil {
		return nil, err
	}
	loop := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.96.0.1")}
	serving := func(base, cn string) error {
		kp, err := ca.issue(certSpec{cn: cn, dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, ips: loop, server: true})
		if err != nil {
			return err
		}
		return kp.write(dir, base)
	}
	for base, cn := range map[string]string{"apiserver": "kube-apiserver", "kwok-serving": "kwok", "metrics-serving": "metrics-server"} {
		if err := serving(base, cn); err != nil {
			return nil, err
		}
	}
	client := func(base, cn string, orgs ...string) (*keyPair, error) {
		kp, err := ca.issue(certSpec{cn: cn, orgs: orgs})
		if err != nil {
			return nil, err
		}
		return kp, kp.write(dir, base)
	}
	c := &clusterCerts{ca: ca}
	if c.admin, err = client("admin", "admin", "system:masters"); err != nil {
		return nil, err
	}
	if c.kcm, err = client("controller-manager", "system:kube-controller-manager"); err != nil {
		return nil, err
	}
	if c.scheduler, err = client("scheduler", "system:kube-scheduler"); err != nil {
		return nil, err
	}
	if c.kwok, err = client("kwok", "kwok", "system:masters"); err != nil {
		return nil, err
	}
	if _, err = client("kubelet-client", "kube-apiserver-kubelet-client", "system:masters"); err != nil {
		return nil, err
	}
	fpca, err := newCA("front-proxy-ca")
	if err != nil {
		return nil, err
	}
	if err := fpca.write(dir, "front-proxy-ca"); err != nil {
		return nil, err
	}
	fpc, err := fpca.issue(certSpec{cn: "front-proxy-client"})
	if err != nil {
		return nil, err
	}
	if err := fpc.write(dir, "front-proxy-client"); err != nil {
		return nil, err
	}
	sa, err := newKey()
	if err != nil {
		return nil, err
	}
	saKey, err := keyPEM(sa)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(sa.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), saKey, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pemBlock("PUBLIC KEY", pub), 0o644); err != nil {
		return nil, err
	}
	return c, nil
}
