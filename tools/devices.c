/* shoal devices: the compute devices this build can use. */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#ifdef SHOAL_WITH_CUDA
#include "cuda_backend.h"
#endif

int cli_cmd_devices(int argc, char **argv) {
    if (argc > 0) return cli_die("devices takes no options (got '%s')", argv[0]);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    printf("cpu       %ld cores (online)\n", ncpu);
#ifdef SHOAL_WITH_CUDA
    int n = 0;
    if (sh_cuda_device_count(&n) != SHOAL_OK) return cli_fail("cuda");
    if (n == 0) printf("cuda      no CUDA device\n");
    for (int i = 0; i < n; i++) {
        sh_cuda_device_info d;
        if (sh_cuda_device_info_get(i, &d) != SHOAL_OK) return cli_fail("cuda");
        printf("cuda:%-4d %s, PCI %s, %.1f GiB (%.1f free), %d SMs, compute %d.%d, L2 %d MiB\n", i, d.name,
               d.pci_bus_id, (double)d.total_bytes / 1073741824.0, (double)d.free_bytes / 1073741824.0, d.sm_count,
               d.cc_major, d.cc_minor, d.l2_bytes >> 20);
    }
#else
    printf("cuda      not built (no nvcc at configure time)\n");
#endif
    return 0;
}
