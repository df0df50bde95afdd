package main

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// Usage comes from what the test says, on the objects themselves:
//   - the pod annotation metrics.runbook.test/usage, or else
//   - the namespace's ConfigMap "test-metrics", key = the longest prefix of the pod's name,
//
// each a JSON map of container name (or "*") to {"cpu": "250m", "memory": "300Mi"}.
// Otherwise a container uses 1m of CPU and 4Mi of memory. Only running pods on a node are
// reported, as metrics-server does; a node's usage is its pods' plus a base of 100m and 512Mi.
const usageAnnotation = "metrics.runbook.test/usage"
const usageConfigMap = "test-metrics"

type usage struct {
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
}

type metricsServer struct {
	pods  func(ns string, sel labels.Selector) ([]*corev1.Pod, error)
	nodes func(sel labels.Selector) ([]*corev1.Node, error)
	cm    func(ns string) *corev1.ConfigMap
}

func runMetrics(args []string) error {
	fs := flag.NewFlagSet("metrics", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "")
	listen := fs.String("listen", "127.0.0.1:0", "")
	cert := fs.String("cert", "", "")
	key := fs.String("key", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	f := informers.NewSharedInformerFactory(kube, 0)
	podL, nodeL, cmL := f.Core().V1().Pods().Lister(), f.Core().V1().Nodes().Lister(), f.Core().V1().ConfigMaps().Lister()
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	m := &metricsServer{
		pods: func(ns string, sel labels.Selector) ([]*corev1.Pod, error) {
			if ns == "" {
				return podL.List(sel)
			}
			return podL.Pods(ns).List(sel)
		},
		nodes: nodeL.List,
		cm: func(ns string) *corev1.ConfigMap {
			c, _ := cmL.ConfigMaps(ns).Get(usageConfigMap)
			return c
		},
	}
	srv := &http.Server{Addr: *listen, Handler: m, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServeTLS(*cert, *key); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, what string) {
	writeJSON(w, 404, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404, Message: what + " not found"})
}

func (m *metricsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const gv = "metrics.k8s.io/v1beta1"
	path := strings.TrimSuffix(r.URL.Path, "/")
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case path == "/healthz" || path == "/readyz" || path == "/livez":
		_, _ = w.Write([]byte("ok"))
		return
	case path == "/apis/metrics.k8s.io":
		writeJSON(w, 200, metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: "metrics.k8s.io",
			Versions:         []metav1.GroupVersionForDiscovery{{GroupVersion: gv, Version: "v1beta1"}},
			PreferredVersion: metav1.GroupVersionForDiscovery{GroupVersion: gv, Version: "v1beta1"}})
		return
	case path == "/apis/metrics.k8s.io/v1beta1":
		writeJSON(w, 200, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv,
			APIResources: []metav1.APIResource{
				{Name: "nodes", Kind: "NodeMetrics", Namespaced: false, Verbs: []string{"get", "list"}},
				{Name: "pods", Kind: "PodMetrics", Namespaced: true, Verbs: []string{"get", "list"}},
			}})
		return
	case len(parts) < 4 || parts[0] != "apis" || parts[1] != "metrics.k8s.io" || parts[2] != "v1beta1":
		notFound(w, path)
		return
	}
	sel := labels.Everything()
	if s := r.URL.Query().Get("labelSelector"); s != "" {
		parsed, err := labels.Parse(s)
		if err != nil {
			writeJSON(w, 400, metav1.Status{Status: "Failure", Code: 400, Reason: metav1.StatusReasonBadRequest, Message: err.Error()})
			return
		}
		sel = parsed
	}
	rest := parts[3:]
	ns := ""
	if rest[0] == "namespaces" && len(rest) >= 3 {
		ns, rest = rest[1], rest[2:]
	}
	now := metav1.NewTime(time.Now())
	switch rest[0] {
	case "pods":
		pods, _ := m.pods(ns, sel)
		var items []metricsv1beta1.PodMetrics
		for _, p := range pods {
			if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				continue
			}
			if len(rest) == 2 && p.Name != rest[1] {
				continue
			}
			items = append(items, m.podMetrics(p, now))
		}
		if len(rest) == 2 {
			if len(items) == 0 {
				notFound(w, "podmetrics "+rest[1])
				return
			}
			writeJSON(w, 200, items[0])
			return
		}
		if items == nil {
			items = []metricsv1beta1.PodMetrics{}
		}
		writeJSON(w, 200, metricsv1beta1.PodMetricsList{TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: gv}, Items: items})
	case "nodes":
		nodes, _ := m.nodes(sel)
		all, _ := m.pods("", labels.Everything())
		var items []metricsv1beta1.NodeMetrics
		for _, n := range nodes {
			if len(rest) == 2 && n.Name != rest[1] {
				continue
			}
			cpu, mem := resource.MustParse("100m"), resource.MustParse("512Mi")
			for _, p := range all {
				if p.Spec.NodeName != n.Name || p.Status.Phase != corev1.PodRunning {
					continue
				}
				for _, c := range m.podMetrics(p, now).Containers {
					cpu.Add(c.Usage[corev1.ResourceCPU])
					mem.Add(c.Usage[corev1.ResourceMemory])
				}
			}
			items = append(items, metricsv1beta1.NodeMetrics{
				TypeMeta:   metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: gv},
				ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: now},
				Timestamp:  now, Window: metav1.Duration{Duration: 30 * time.Second},
				Usage:      corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem},
			})
		}
		if len(rest) == 2 {
			if len(items) == 0 {
				notFound(w, "nodemetrics "+rest[1])
				return
			}
			writeJSON(w, 200, items[0])
			return
		}
		if items == nil {
			items = []metricsv1beta1.NodeMetrics{}
		}
		writeJSON(w, 200, metricsv1beta1.NodeMetricsList{TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: gv}, Items: items})
	default:
		notFound(w, path)
	}
}

func (m *metricsServer) usageFor(p *corev1.Pod) map[string]usage {
	parse := func(s string) map[string]usage {
		var u map[string]usage
		if json.Unmarshal([]byte(s), &u) != nil {
			return nil
		}
		return u
	}
	if s, ok := p.Annotations[usageAnnotation]; ok {
		return parse(s)
	}
	if cm := m.cm(p.Namespace); cm != nil {
		best := ""
		for k := range cm.Data {
			if strings.HasPrefix(p.Name, k) && len(k) > len(best) {
				best = k
			}
		}
		if best != "" {
			return parse(cm.Data[best])
		}
	}
	return nil
}

func (m *metricsServer) podMetrics(p *corev1.Pod, now metav1.Time) metricsv1beta1.PodMetrics {
	spec := m.usageFor(p)
	pm := metricsv1beta1.PodMetrics{
		TypeMeta:   metav1.TypeMeta{Kind: "PodMetrics", APIVersion: "metrics.k8s.io/v1beta1"},
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: now},
		Timestamp:  now, Window: metav1.Duration{Duration: 30 * time.Second},
	}
	for _, c := range p.Spec.Containers {
		u, ok := spec[c.Name]
		if !ok {
			u, ok = spec["*"]
		}
		if !ok {
			u = usage{CPU: "1m", Memory: "4Mi"}
		}
		cpu, err1 := resource.ParseQuantity(u.CPU)
		mem, err2 := resource.ParseQuantity(u.Memory)
		if err1 != nil {
			cpu = resource.MustParse("1m")
		}
		if err2 != nil {
			mem = resource.MustParse("4Mi")
		}
		pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: c.Name, Usage: corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem}})
	}
	return pm
}
