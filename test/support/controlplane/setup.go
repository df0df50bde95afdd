package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"
	kwokcrd "sigs.k8s.io/kwok/kustomize/crd"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/yaml"
)

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

var stageGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "stages"}

// setupCluster installs what the components expect before they start: kwok's CRDs and its
// default (no-delay) node and pod stages, and the metrics.k8s.io APIService.
func setupCluster(ctx context.Context, kubeconfig string, metricsPort int, dir string) error {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	ext, err := apiext.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := [][]byte{kwokcrd.Stage, kwokcrd.Logs, kwokcrd.ClusterLogs, kwokcrd.Exec, kwokcrd.ClusterExec,
		kwokcrd.PortForward, kwokcrd.ClusterPortForward, kwokcrd.Attach, kwokcrd.ClusterAttach}
	var names []string
	for _, raw := range crds {
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			return err
		}
		names = append(names, crd.Name)
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("CRD %s: %w", crd.Name, err)
		}
	}
	for _, name := range names {
		if err := poll(ctx, 60*time.Second, func() (bool, error) {
			crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return fmt.Errorf("CRD %s not established: %w", name, err)
		}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, raw := range []string{nodefast.DefaultNodeInit, nodeheartbeat.DefaultNodeHeartbeatWithLease, podfast.DefaultPodReady, podfast.DefaultPodComplete, podfast.DefaultPodDelete} {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(raw), &obj.Object); err != nil {
			return err
		}
		if err := poll(ctx, 30*time.Second, func() (bool, error) {
			_, err := dyn.Resource(stageGVR).Create(ctx, obj, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return true, nil
			}
			if apierrors.IsNotFound(err) {
				return false, nil // discovery of the new CRD still settling
			}
			return false, err
		}); err != nil {
			return fmt.Errorf("stage %s: %w", obj.GetName(), err)
		}
	}

	// A kubelet serves every container's log, empty until it writes one; kwok answers 400 for a
	// container it has no log file for, so every container starts with an empty one.
	empty := filepath.Join(dir, "empty-container.log")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return err
	}
	clusterLogsGVR := schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "clusterlogs"}
	defaultLogs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs",
		"metadata": map[string]any{"name": "every-container"},
		"spec":     map[string]any{"logs": []any{map[string]any{"logsFile": empty}}},
	}}
	if _, err := dyn.Resource(clusterLogsGVR).Create(ctx, defaultLogs, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("default container logs: %w", err)
	}

	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// metrics.k8s.io is served by our own process on loopback; the aggregator reaches an
	// ExternalName service by its name and port, so no cluster networking is needed.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: "kube-system"},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: int32(metricsPort), TargetPort: intstr.FromInt32(int32(metricsPort))}},
		},
	}
	if _, err := kube.CoreV1().Services("kube-system").Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("metrics service: %w", err)
	}
	agg, err := aggregator.NewForConfig(cfg)
	if err != nil {
		return err
	}
	apisvc := &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: "v1beta1.metrics.k8s.io"},
		Spec: apiregv1.APIServiceSpec{
			Group: "metrics.k8s.io", Version: "v1beta1",
			Service:               &apiregv1.ServiceReference{Namespace: "kube-system", Name: "metrics-server", Port: ptr.To(int32(metricsPort))},
			InsecureSkipTLSVerify: true,
			GroupPriorityMinimum:  100, VersionPriority: 100,
		},
	}
	if _, err := agg.ApiregistrationV1().APIServices().Create(ctx, apisvc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("metrics APIService: %w", err)
	}
	return nil
}

// waitClusterReady creates the kwok nodes and waits until they are Ready, the metrics API is
// Available and the service-account controller has made the default namespace usable for pods.
func waitClusterReady(ctx context.Context, kubeconfig string, nodes []string, sup *supervisor, kcm *child) error {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, name := range nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels:      map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"},
			},
			Status: corev1.NodeStatus{
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi"), corev1.ResourcePods: resource.MustParse("110")},
			},
		}
		if _, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("node %s: %w", name, err)
		}
	}
	agg, err := aggregator.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var why string
	err = poll(ctx, 90*time.Second, func() (bool, error) {
		select {
		case c := <-sup.exited:
			return false, fmt.Errorf("%s exited: %v\n%s", c.name, c.err, tail(c.log, 40))
		default:
		}
		for _, name := range nodes {
			n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || !nodeReady(n) {
				why = "node " + name + " not Ready"
				return false, nil
			}
			for _, t := range n.Spec.Taints {
				if t.Key == "node.kubernetes.io/not-ready" {
					why = "node " + name + " still tainted not-ready"
					return false, nil
				}
			}
		}
		if _, err := kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			why = "no default service account yet"
			return false, nil
		}
		a, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1beta1.metrics.k8s.io", metav1.GetOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		for _, c := range a.Status.Conditions {
			if c.Type == apiregv1.Available {
				if c.Status == apiregv1.ConditionTrue {
					return true, nil
				}
				why = "metrics APIService: " + c.Reason + " " + c.Message
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("cluster not ready (%s): %w\ncontroller-manager log:\n%s", why, err, tail(kcm.log, 20))
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func poll(ctx context.Context, limit time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var _ = strings.TrimSpace
