# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The config kinds kubeadm reads, field by field, for the kubeadm and kubelet stand-ins.

Field names and types follow cmd/kubeadm/app/apis/kubeadm/v1beta3 and v1beta4 types.go,
k8s.io/kubelet/config/v1beta1 and k8s.io/kube-proxy/config/v1alpha1 (kubernetes.io/docs/reference/
config-api/). A schema is a dict of field name -> type; a type is one of the strings below, a
nested schema dict, or a one-element list holding the type of the items:

    "str" "bool" "int" "float" "dur" (a Go duration string) "time" (a metav1.Time: RFC 3339) "any"
    "{str}" "{bool}" "{[str]}" "{any}"   maps with string keys
    ["str"], [schema]                    lists

Decoding is strict, like `kubeadm config validate`: an unknown or duplicate field is an error, and
a value of the wrong JSON type is an error worded as encoding/json words it. Fields that exist only
from some Kubernetes minor on are listed in SINCE.
"""

import re

ARG = {"name": "str", "value": "str"}
ENV_VAR = {"name": "str", "value": "str", "valueFrom": "{any}"}
TAINT = {"key": "str", "value": "str", "effect": "str", "timeAdded": "str"}
HOST_PATH_MOUNT = {"name": "str", "hostPath": "str", "mountPath": "str", "readOnly": "bool", "pathType": "str"}
API_ENDPOINT = {"advertiseAddress": "str", "bindPort": "int"}
PATCHES = {"directory": "str"}
IMAGE_META = {"imageRepository": "str", "imageTag": "str"}
BOOTSTRAP_TOKEN = {"token": "str", "description": "str", "ttl": "dur", "expires": "time", "usages": ["str"], "groups": ["str"]}
TIMEOUTS = {"controlPlaneComponentHealthCheck": "dur", "kubeletHealthCheck": "dur", "kubernetesAPICall": "dur", "etcdAPICall": "dur",
            "tlsBootstrap": "dur", "discovery": "dur", "upgradeManifests": "dur"}
DISCOVERY_FILE = {"kubeConfigPath": "str"}
BOOTSTRAP_TOKEN_DISCOVERY = {"token": "str", "apiServerEndpoint": "str", "caCertHashes": ["str"], "unsafeSkipCAVerification": "bool"}


def _node_registration(extra_args, beta4):
    schema = {"name": "str", "criSocket": "str", "taints": [TAINT], "kubeletExtraArgs": extra_args, "ignorePreflightErrors": ["str"],
              "imagePullPolicy": "str"}
    if beta4:
        schema["imagePullSerial"] = "bool"
    return schema


def _component(extra_args, beta4):
    schema = {"extraArgs": extra_args, "extraVolumes": [HOST_PATH_MOUNT]}
    if beta4:
        schema["extraEnvs"] = [ENV_VAR]
    return schema


def _kubeadm_kinds(beta4):
    extra_args = [ARG] if beta4 else "{str}"
    component = _component(extra_args, beta4)
    api_server = dict(component, certSANs=["str"])
    local_etcd = dict(IMAGE_META, dataDir="str", extraArgs=extra_args, serverCertSANs=["str"], peerCertSANs=["str"])
    external_etcd = {"endpoints": ["str"], "caFile": "str", "certFile": "str", "keyFile": "str"}
    dns = dict(IMAGE_META)
    node_registration = _node_registration(extra_args, beta4)
    discovery = {"bootstrapToken": BOOTSTRAP_TOKEN_DISCOVERY, "file": DISCOVERY_FILE, "tlsBootstrapToken": "str"}
    init = {"bootstrapTokens": [BOOTSTRAP_TOKEN], "nodeRegistration": node_registration, "localAPIEndpoint": API_ENDPOINT,
            "certificateKey": "str", "skipPhases": ["str"], "patches": PATCHES}
    join = {"nodeRegistration": node_registration, "caCertPath": "str", "discovery": discovery,
            "controlPlane": {"localAPIEndpoint": API_ENDPOINT, "certificateKey": "str"}, "skipPhases": ["str"], "patches": PATCHES}
    cluster = {"etcd": {"local": local_etcd, "external": external_etcd}, "networking": {"serviceSubnet": "str", "podSubnet": "str", "dnsDomain": "str"},
               "kubernetesVersion": "str", "controlPlaneEndpoint": "str", "apiServer": api_server, "controllerManager": component,
               "scheduler": component, "dns": dns, "certificatesDir": "str", "imageRepository": "str", "featureGates": "{bool}", "clusterName": "str"}
    if beta4:
        init.update(dryRun="bool", timeouts=TIMEOUTS)
        join.update(dryRun="bool", timeouts=TIMEOUTS)
        local_etcd["extraEnvs"] = [ENV_VAR]
        dns["disabled"] = "bool"
        cluster.update(proxy={"disabled": "bool"}, encryptionAlgorithm="str", certificateValidityPeriod="dur", caCertificateValidityPeriod="dur")
        external_etcd["httpEndpoints"] = ["str"]
        reset = {"cleanupTmpDir": "bool", "certificatesDir": "str", "criSocket": "str", "dryRun": "bool", "force": "bool",
                 "ignorePreflightErrors": ["str"], "skipPhases": ["str"], "unmountFlags": ["str"], "timeouts": TIMEOUTS}
        upgrade = {
            "apply": {"kubernetesVersion": "str", "allowExperimentalUpgrades": "bool", "allowRCUpgrades": "bool", "certificateRenewal": "bool",
                      "dryRun": "bool", "etcdUpgrade": "bool", "forceUpgrade": "bool", "ignorePreflightErrors": ["str"], "patches": PATCHES,
                      "printConfig": "bool", "skipPhases": ["str"]},
            "diff": {"kubernetesVersion": "str", "contextLines": "int"},
            "node": {"certificateRenewal": "bool", "dryRun": "bool", "etcdUpgrade": "bool", "ignorePreflightErrors": ["str"], "skipPhases": ["str"],
                     "patches": PATCHES},
            "plan": {"kubernetesVersion": "str", "allowExperimentalUpgrades": "bool", "allowRCUpgrades": "bool", "dryRun": "bool",
                     "ignorePreflightErrors": ["str"], "printConfig": "bool", "etcdUpgrade": "bool"},
            "timeouts": TIMEOUTS,
        }
        return {"InitConfiguration": init, "ClusterConfiguration": cluster, "JoinConfiguration": join,
                "ResetConfiguration": reset, "UpgradeConfiguration": upgrade}
    api_server["timeoutForControlPlane"] = "dur"
    discovery["timeout"] = "dur"
    return {"InitConfiguration": init, "ClusterConfiguration": cluster, "JoinConfiguration": join}


KUBEADM_KINDS = {"kubeadm.k8s.io/v1beta3": _kubeadm_kinds(False), "kubeadm.k8s.io/v1beta4": _kubeadm_kinds(True)}

# (apiVersion, kind, dotted field) -> first Kubernetes minor that knows it
SINCE = {
    ("kubeadm.k8s.io/v1beta4", "ClusterConfiguration", "etcd.external.httpEndpoints"): 35,
    ("kubeadm.k8s.io/v1beta4", "UpgradeConfiguration", "plan.etcdUpgrade"): 33,
}
ENCRYPTION_ALGORITHMS = {"RSA-2048": 31, "RSA-3072": 31, "RSA-4096": 31, "ECDSA-P256": 31, "ECDSA-P384": 34}

LOGGING = {"format": "str", "flushFrequency": "any", "verbosity": "int", "vmodule": [{"fileName": "str", "verbosity": "int"}],
           "options": {"json": {"splitStream": "bool", "infoBufferSize": "any"}, "text": {"splitStream": "bool", "infoBufferSize": "any"}}}

KUBELET_CONFIGURATION = {
    "enableServer": "bool", "staticPodPath": "str", "podLogsDir": "str", "syncFrequency": "dur", "fileCheckFrequency": "dur",
    "httpCheckFrequency": "dur", "staticPodURL": "str", "staticPodURLHeader": "{[str]}", "address": "str", "port": "int",
    "readOnlyPort": "int", "tlsCertFile": "str", "tlsPrivateKeyFile": "str", "tlsCipherSuites": ["str"], "tlsCurvePreferences": ["int"],
    "tlsMinVersion": "str", "rotateCertificates": "bool", "serverTLSBootstrap": "bool",
    "authentication": {"x509": {"clientCAFile": "str"}, "webhook": {"enabled": "bool", "cacheTTL": "dur"}, "anonymous": {"enabled": "bool"}},
    "authorization": {"mode": "str", "webhook": {"cacheAuthorizedTTL": "dur", "cacheUnauthorizedTTL": "dur"}},
    "registryPullQPS": "int", "registryBurst": "int", "imagePullCredentialsVerificationPolicy": "str",
    "preloadedImagesVerificationAllowlist": ["str"], "eventRecordQPS": "int", "eventBurst": "int", "enableDebuggingHandlers": "bool",
    "enableContentionProfiling": "bool", "healthzPort": "int", "healthzBindAddress": "str", "oomScoreAdj": "int", "clusterDomain": "str",
    "clusterDNS": ["str"], "streamingConnectionIdleTimeout": "dur", "nodeStatusUpdateFrequency": "dur", "nodeStatusReportFrequency": "dur",
    "nodeLeaseDurationSeconds": "int", "imageMinimumGCAge": "dur", "imageMaximumGCAge": "dur", "imageGCHighThresholdPercent": "int",
    "imageGCLowThresholdPercent": "int", "volumeStatsAggPeriod": "dur", "kubeletCgroups": "str", "systemCgroups": "str", "cgroupRoot": "str",
    "cgroupsPerQOS": "bool", "cgroupDriver": "str", "cpuManagerPolicy": "str", "singleProcessOOMKill": "bool",
    "cpuManagerPolicyOptions": "{str}", "cpuManagerReconcilePeriod": "dur", "draManagerReconcilePeriod": "dur", "memoryManagerPolicy": "str",
    "topologyManagerPolicy": "str", "topologyManagerScope": "str", "topologyManagerPolicyOptions": "{str}", "qosReserved": "{str}",
    "runtimeRequestTimeout": "dur", "hairpinMode": "str", "maxPods": "int", "podCIDR": "str", "podPidsLimit": "int", "resolvConf": "str",
    "runOnce": "bool", "cpuCFSQuota": "bool", "cpuCFSQuotaPeriod": "dur", "nodeStatusMaxImages": "int", "maxOpenFiles": "int",
    "contentType": "str", "kubeAPIQPS": "int", "kubeAPIBurst": "int", "serializeImagePulls": "bool", "maxParallelImagePulls": "int",
    "evictionHard": "{str}", "evictionSoft": "{str}", "evictionSoftGracePeriod": "{str}", "evictionPressureTransitionPeriod": "dur",
    "evictionMaxPodGracePeriod": "int", "evictionMinimumReclaim": "{str}", "mergeDefaultEvictionSettings": "bool", "podsPerCore": "int",
    "enableControllerAttachDetach": "bool", "protectKernelDefaults": "bool", "makeIPTablesUtilChains": "bool",
    "iptablesMasqueradeBit": "int", "iptablesDropBit": "int", "featureGates": "{bool}", "failSwapOn": "bool",
    "memorySwap": {"swapBehavior": "str"}, "containerLogMaxSize": "str", "containerLogMaxFiles": "int", "containerLogMaxWorkers": "int",
    "containerLogMonitorInterval": "dur", "configMapAndSecretChangeDetectionStrategy": "str", "systemReserved": "{str}",
    "kubeReserved": "{str}", "reservedSystemCPUs": "str", "showHiddenMetricsForVersion": "str", "systemReservedCgroup": "str",
    "kubeReservedCgroup": "str", "enforceNodeAllocatable": ["str"], "allowedUnsafeSysctls": ["str"], "volumePluginDir": "str",
    "providerID": "str", "kernelMemcgNotification": "bool", "logging": LOGGING, "enableSystemLogHandler": "bool",
    "enableSystemLogQuery": "bool", "shutdownGracePeriod": "dur", "shutdownGracePeriodCriticalPods": "dur",
    "shutdownGracePeriodByPodPriority": [{"priority": "int", "shutdownGracePeriodSeconds": "int"}],
    "crashLoopBackOff": {"maxContainerRestartPeriod": "dur"}, "reservedMemory": [{"numaNode": "int", "limits": "{any}"}],
    "enableProfilingHandler": "bool", "enableDebugFlagsHandler": "bool", "seccompDefault": "bool", "memoryThrottlingFactor": "float",
    "memoryReservationPolicy": "str", "registerWithTaints": [TAINT], "registerNode": "bool",
    "tracing": {"endpoint": "str", "samplingRatePerMillion": "int"}, "localStorageCapacityIsolation": "bool",
    "containerRuntimeEndpoint": "str", "imageServiceEndpoint": "str", "failCgroupV1": "bool", "userNamespaces": {"idsPerPod": "int"},
}

_SYNC = {"syncPeriod": "dur", "minSyncPeriod": "dur"}
KUBE_PROXY_CONFIGURATION = {
    "featureGates": "{bool}",
    "clientConnection": {"kubeconfig": "str", "acceptContentTypes": "str", "contentType": "str", "qps": "float", "burst": "int"},
    "logging": LOGGING, "hostnameOverride": "str", "bindAddress": "str", "healthzBindAddress": "str", "metricsBindAddress": "str",
    "bindAddressHardFail": "bool", "enableProfiling": "bool", "showHiddenMetricsForVersion": "str", "mode": "str",
    "iptables": dict(_SYNC, masqueradeBit="int", masqueradeAll="bool", localhostNodePorts="bool", snatNodeInternalIP="bool"),
    "ipvs": dict(_SYNC, scheduler="str", excludeCIDRs=["str"], strictARP="bool", tcpTimeout="dur", tcpFinTimeout="dur", udpTimeout="dur"),
    "nftables": dict(_SYNC, masqueradeBit="int", masqueradeAll="bool"),
    "winkernel": {"networkName": "str", "sourceVip": "str", "enableDSR": "bool", "rootHnsEndpointName": "str", "forwardHealthCheckVip": "bool"},
    "detectLocalMode": "str", "detectLocal": {"bridgeInterface": "str", "interfaceNamePrefix": "str"}, "clusterCIDR": "str",
    "nodePortAddresses": ["str"], "oomScoreAdj": "int",
    "conntrack": {"maxPerCore": "int", "min": "int", "tcpEstablishedTimeout": "dur", "tcpCloseWaitTimeout": "dur", "tcpBeLiberal": "bool",
                  "udpTimeout": "dur", "udpStreamTimeout": "dur"},
    "configSyncPeriod": "dur", "portRange": "str", "windowsRunAsService": "bool",
}

COMPONENT_KINDS = {
    "kubelet.config.k8s.io/v1beta1": {"KubeletConfiguration": KUBELET_CONFIGURATION},
    "kubeproxy.config.k8s.io/v1alpha1": {"KubeProxyConfiguration": KUBE_PROXY_CONFIGURATION},
}

_DURATION_RE = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_GO_TYPES = {"str": "string", "bool": "bool", "int": "int32", "float": "float64", "dur": "string", "time": "string"}


def parse_duration(text):
    """Seconds in a Go duration string ("1h30m", "90s", "0"); ValueError as time.ParseDuration words it."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not isinstance(text, str) or not _DURATION_RE.match(text):
        raise ValueError('time: invalid duration "%s"' % text)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    sign = -1 if text.startswith("-") else 1
    total = 0.0
    for number, _whole, _fraction, unit in re.findall(r"((\d+(\.\d*)?|\.\d+))(ns|us|µs|ms|s|m|h)", text):
        total += float(number) * units[unit]
    return sign * total


RFC3339 = "2006-01-02T15:04:05Z07:00"
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def rfc3339_error(value):
    """None if Go's time.Parse(time.RFC3339, value) accepts value (metav1.Time's UnmarshalJSON), else its error text."""
    def cannot(rest, element):
        return 'parsing time "%s" as "%s": cannot parse "%s" as "%s"' % (value, RFC3339, rest, element)
    rest, numbers = value, {}
    # (layout element, digits it takes: fixed count, or (1, 2) for the unpadded hour "15")
    for element, literal, width in (("2006", None, 4), ("-", "-", 0), ("01", None, 2), ("-", "-", 0), ("02", None, 2), ("T", "T", 0),
                                    ("15", None, (1, 2)), (":", ":", 0), ("04", None, 2), (":", ":", 0), ("05", None, 2)):
        if literal:
            if not rest.startswith(literal):
                return cannot(rest, element)
            rest = rest[len(literal):]
            continue
        low, high = width if isinstance(width, tuple) else (width, width)
        count = 0
        while count < high and count < len(rest) and rest[count].isdigit() and rest[count].isascii():
            count += 1
        if count < low:
            return cannot(rest, element)
        numbers[element], rest = int(rest[:count]), rest[count:]
        limits = {"01": (1, 12, "month"), "02": (1, 31, "day"), "15": (0, 23, "hour"), "04": (0, 59, "minute"), "05": (0, 59, "second")}
        if element in limits and not limits[element][0] <= numbers[element] <= limits[element][1]:
            return 'parsing time "%s": %s out of range' % (value, limits[element][2])
        if element == "05" and len(rest) >= 2 and rest[0] in ".," and rest[1].isdigit():
            count = 1
            while count < len(rest) and rest[count].isdigit():
                count += 1
            rest = rest[count:]
    if rest.startswith("Z"):
        rest = rest[1:]
    elif len(rest) >= 6 and rest[0] in "+-" and rest[3] == ":" and (rest[1:3] + rest[4:6]).isdigit():
        rest = rest[6:]
    else:
        return cannot(rest, "Z07:00")
    if rest:
        return 'parsing time "%s": extra text: "%s"' % (value, rest)
    year, month = numbers["2006"], numbers["01"]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if numbers["02"] > _DAYS_IN_MONTH[month - 1] or (month == 2 and numbers["02"] == 29 and not leap):
        return 'parsing time "%s": day out of range' % value
    return None


def _json_type(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Decoder:
    """Strict decoding of one document against a schema; collects errors instead of stopping at the first."""

    def __init__(self, kind, api_version, minor):
        self.kind = kind
        self.api_version = api_version
        self.minor = minor
        self.errors = []

    def type_error(self, path, value, go_type):
        self.errors.append("json: cannot unmarshal %s into Go struct field %s.%s of type %s" % (_json_type(value), self.kind, path, go_type))

    def check(self, schema, value, path):
        if value is None:
            return
        if isinstance(schema, dict):
            if not isinstance(value, dict):
                self.type_error(path, value, "struct")
                return
            for key, item in value.items():
                child = "%s.%s" % (path, key) if path else key
                since = SINCE.get((self.api_version, self.kind, child))
                if key not in schema or (since and self.minor is not None and self.minor < since):
                    self.errors.append('strict decoding error: unknown field "%s"' % child)
                    continue
                self.check(schema[key], item, child)
            return
        if isinstance(schema, list):
            if not isinstance(value, list):
                self.type_error(path, value, "[]" + _GO_TYPES.get(schema[0], "struct") if isinstance(schema[0], str) else "[]struct")
                return
            for index, item in enumerate(value):
                self.check(schema[0], item, "%s[%d]" % (path, index))
            return
        if schema == "any":
            return
        if schema.startswith("{"):
            inner = schema[1:-1]
            if not isinstance(value, dict):
                self.type_error(path, value, "map[string]" + (_GO_TYPES.get(inner) or inner))
                return
            for key, item in value.items():
                if inner == "any" or item is None:
                    continue
                if inner == "[str]":
                    if not isinstance(item, list) or any(not isinstance(element, str) for element in item):
                        self.type_error("%s[%s]" % (path, key), item, "[]string")
                elif not self._scalar_ok(inner, item):
                    self.type_error("%s[%s]" % (path, key), item, _GO_TYPES[inner])
            return
        if not self._scalar_ok(schema, value):
            self.type_error(path, value, _GO_TYPES[schema])
            return
        if schema == "dur":
            try:
                parse_duration(value)
            except ValueError as error:
                self.errors.append("%s: %s" % (path, error))
        if schema == "time" and rfc3339_error(value):
            self.errors.append("%s: %s" % (path, rfc3339_error(value)))

    @staticmethod
    def _scalar_ok(kind, value):
        if kind in ("str", "dur", "time"):
            return isinstance(value, str)
        if kind == "bool":
            return isinstance(value, bool)
        if kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if kind == "float":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return True


def schema_for(api_version, kind):
    """The schema of a kind, or None when this apiVersion/kind pair is unknown."""
    kinds = KUBEADM_KINDS.get(api_version) or COMPONENT_KINDS.get(api_version) or {}
    return kinds.get(kind)


def decode(document, minor):
    """Strict-decoding errors for one parsed document (an empty list when it is valid)."""
    api_version, kind = document.get("apiVersion"), document.get("kind")
    schema = schema_for(api_version, kind)
    decoder = Decoder(kind, api_version, minor)
    body = {key: value for key, value in document.items() if key not in ("apiVersion", "kind")}
    if "metadata" in body and api_version in COMPONENT_KINDS:
        body.pop("metadata")
    decoder.check(schema, body, "")
    return decoder.errors
