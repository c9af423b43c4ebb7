// A stand-in for libnvidia-ml.so.1, for the binding's tests: the entry points
// the binding calls, with the signatures and struct layouts of nvml.h (API 13),
// answering for two GPUs. GPU 0 is an H100 in MIG mode with two GPU instances
// (a 3g.40gb and a 1g.10gb, one compute instance each) and one MIG device
// handle; GPU 1 an A100 with three compute processes. Only the versioned entry
// points of the newest API are exported, except where a test wants a fallback.
#include <string.h>

typedef int ret_t;
enum { OK = 0, UNINIT = 1, INVALID = 2, NOT_SUPPORTED = 3, NOT_FOUND = 6, INSUFFICIENT = 7 };

typedef struct { unsigned long long total, free, used; } memory_t;
typedef struct {
	char busIdLegacy[16];
	unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
	char busId[32];
} pci_t;
typedef struct { unsigned int gpu, memory; } util_t;
typedef struct {
	unsigned int pid;
	unsigned long long usedGpuMemory;
	unsigned int gpuInstanceId, computeInstanceId;
} proc_t;
typedef struct {
	unsigned int id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount,
		copyEngineCount, decoderCount, encoderCount, jpegCount, ofaCount;
	unsigned long long memorySizeMB;
} gi_profile_t;
typedef struct { unsigned int start, size; } placement_t;
typedef struct { void *device; unsigned int id, profileId; placement_t placement; } gi_info_t;
typedef struct {
	unsigned int id, sliceCount, instanceCount, multiprocessorCount,
		sharedCopyEngineCount, sharedDecoderCount, sharedEncoderCount, sharedJpegCount, sharedOfaCount;
} ci_profile_t;
typedef struct { void *device, *gpuInstance; unsigned int id, profileId; placement_t placement; } ci_info_t;

struct dev { int index, mig, gi, ci; };      // mig: a MIG device handle of GPU 0 (gi, ci)
struct gi { int id, profile; };
struct ci { int gi, id; };

static int inited;
static struct dev devs[2] = {{0, 0, 0, 0}, {1, 0, 0, 0}};
static struct dev migdev = {0, 1, 2, 0};
static struct gi gis[2] = {{1, 9}, {2, 19}};
static struct ci cis[2] = {{1, 0}, {2, 0}};

ret_t nvmlInit_v2(void) { inited++; return OK; }
ret_t nvmlShutdown(void) { if (!inited) return UNINIT; inited--; return OK; }

static ret_t copy(char *dst, unsigned int n, const char *s) {
	if (strlen(s) + 1 > n) return INSUFFICIENT;
	strcpy(dst, s);
	return OK;
}

ret_t nvmlSystemGetDriverVersion(char *v, unsigned int n) { return copy(v, n, "590.48.01"); }
// Only the unversioned one: the binding must fall back to it.
ret_t nvmlSystemGetCudaDriverVersion(int *v) { *v = 13010; return OK; }
ret_t nvmlDeviceGetCount_v2(unsigned int *n) { if (!inited) return UNINIT; *n = 2; return OK; }
ret_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, struct dev **d) {
	if (i > 1) return INVALID;
	*d = &devs[i];
	return OK;
}

ret_t nvmlDeviceGetName(struct dev *d, char *s, unsigned int n) {
	return copy(s, n, d->index == 0 ? "NVIDIA H100 80GB HBM3" : "NVIDIA A100-SXM4-40GB");
}
ret_t nvmlDeviceGetIndex(struct dev *d, unsigned int *i) { *i = d->index; return OK; }
ret_t nvmlDeviceGetUUID(struct dev *d, char *s, unsigned int n) {
	if (d->mig) return copy(s, n, "MIG-5c8f1f52-4a9b-5d6f-8a3c-000000000002");
	return copy(s, n, d->index == 0 ? "GPU-11111111-2222-3333-4444-555555555555" : "GPU-66666666-7777-8888-9999-000000000000");
}
ret_t nvmlDeviceGetMemoryInfo(struct dev *d, memory_t *m) {
	m->total = d->index == 0 ? 85520809984ULL : 42949672960ULL;
	m->used = 1ULL << 30;
	m->free = m->total - m->used;
	return OK;
}
ret_t nvmlDeviceGetPciInfo_v3(struct dev *d, pci_t *p) {
	memset(p, 0, sizeof *p);
	p->bus = d->index == 0 ? 0x17 : 0x65;
	p->pciDeviceId = d->index == 0 ? 0x233010de : 0x20b010de;
	p->pciSubSystemId = 0x16c110de;
	strcpy(p->busIdLegacy, d->index == 0 ? "0000:17:00.0" : "0000:65:00.0");
	strcpy(p->busId, d->index == 0 ? "00000000:17:00.0" : "00000000:65:00.0");
	return OK;
}
ret_t nvmlDeviceGetCudaComputeCapability(struct dev *d, int *major, int *minor) {
	*major = d->index == 0 ? 9 : 8;
	*minor = 0;
	return OK;
}
ret_t nvmlDeviceGetArchitecture(struct dev *d, unsigned int *a) { *a = d->index == 0 ? 9 : 7; return OK; }
ret_t nvmlDeviceGetEnforcedPowerLimit(struct dev *d, unsigned int *mw) {
	if (d->index == 1) return NOT_SUPPORTED; // the binding reports it; inventory falls back
	*mw = 700000;
	return OK;
}
ret_t nvmlDeviceGetPowerManagementLimit(struct dev *d, unsigned int *mw) { (void)d; *mw = 400000; return OK; }
ret_t nvmlDeviceGetUtilizationRates(struct dev *d, util_t *u) { u->gpu = d->index == 0 ? 0 : 87; u->memory = 12; return OK; }
ret_t nvmlDeviceGetMigMode(struct dev *d, unsigned int *cur, unsigned int *pending) {
	*cur = *pending = d->index == 0 ? 1 : 0;
	return OK;
}
// Profiles 2 (3 slices, 40 GB) and 0 (1 slice, 10 GB) as profile ids 9 and 19.
ret_t nvmlDeviceGetGpuInstanceProfileInfo(struct dev *d, unsigned int profile, gi_profile_t *p) {
	if (d->index != 0) return NOT_SUPPORTED;
	memset(p, 0, sizeof *p);
	switch (profile) {
	case 0: p->id = 19; p->sliceCount = 1; p->instanceCount = 7; p->multiprocessorCount = 16; p->memorySizeMB = 9984; return OK;
	case 2: p->id = 9; p->sliceCount = 3; p->instanceCount = 2; p->multiprocessorCount = 60; p->memorySizeMB = 40320; return OK;
	}
	return INVALID;
}
ret_t nvmlDeviceGetGpuInstances(struct dev *d, unsigned int profileId, struct gi **out, unsigned int *count) {
	(void)d;
	unsigned int n = 0;
	for (int i = 0; i < 2; i++)
		if ((unsigned int)gis[i].profile == profileId) out[n++] = &gis[i];
	*count = n;
	return OK;
}
ret_t nvmlGpuInstanceGetInfo(struct gi *g, gi_info_t *info) {
	memset(info, 0, sizeof *info);
	info->device = &devs[0];
	info->id = g->id;
	info->profileId = g->profile;
	return OK;
}
ret_t nvmlGpuInstanceGetComputeInstanceProfileInfo(struct gi *g, unsigned int profile, unsigned int eng, ci_profile_t *p) {
	if (eng != 0) return INVALID;
	unsigned int slices = g->profile == 9 ? 3 : 1, want = g->profile == 9 ? 2 : 0;
	if (profile != want) return NOT_SUPPORTED;
	memset(p, 0, sizeof *p);
	p->id = profile;
	p->sliceCount = slices;
	p->instanceCount = 1;
	p->multiprocessorCount = slices == 3 ? 60 : 16;
	return OK;
}
ret_t nvmlGpuInstanceGetComputeInstances(struct gi *g, unsigned int profileId, struct ci **out, unsigned int *count) {
	(void)profileId;
	*count = 0;
	for (int i = 0; i < 2; i++)
		if (cis[i].gi == g->id) out[(*count)++] = &cis[i];
	return OK;
}
// Only the old name: the binding must fall back to it.
ret_t nvmlComputeInstanceGetInfo(struct ci *c, ci_info_t *info) {
	memset(info, 0, sizeof *info);
	info->id = c->id;
	return OK;
}
ret_t nvmlDeviceGetMaxMigDeviceCount(struct dev *d, unsigned int *n) { *n = d->index == 0 ? 7 : 0; return OK; }
ret_t nvmlDeviceGetMigDeviceHandleByIndex(struct dev *d, unsigned int i, struct dev **out) {
	if (d->index != 0 || i != 0) return NOT_FOUND;
	*out = &migdev;
	return OK;
}
ret_t nvmlDeviceGetGpuInstanceId(struct dev *d, unsigned int *id) { if (!d->mig) return INVALID; *id = d->gi; return OK; }
ret_t nvmlDeviceGetComputeInstanceId(struct dev *d, unsigned int *id) { if (!d->mig) return INVALID; *id = d->ci; return OK; }

// 40 compute processes on GPU 1: more than a first buffer of 16 holds.
ret_t nvmlDeviceGetComputeRunningProcesses_v3(struct dev *d, unsigned int *count, proc_t *infos) {
	unsigned int n = d->index == 1 ? 40 : 0;
	if (*count < n) { *count = n; return INSUFFICIENT; }
	for (unsigned int i = 0; i < n; i++) {
		infos[i].pid = 1000 + i;
		infos[i].usedGpuMemory = (unsigned long long)(i + 1) << 20;
		infos[i].gpuInstanceId = infos[i].computeInstanceId = 0xFFFFFFFFu;
	}
	*count = n;
	return OK;
}
ret_t nvmlDeviceGetGraphicsRunningProcesses_v3(struct dev *d, unsigned int *count, proc_t *infos) {
	(void)d; (void)infos;
	*count = 0;
	return OK;
}
