# NCCL over EFA on AWS training nodes; sourced after node_env.sh by the launcher's worker start command:
#   source ~/solar-ray/cluster/node_env.sh aws && source ~/solar-ray/cluster/aws/efa_env.sh && ray start ...
# Ray Train workers inherit these from `ray start`. Without them NCCL falls back to TCP sockets between nodes,
# and ZeRO-3's all-gathers of a 10.7B model crawl. The Deep Learning Base AMI ships the EFA driver, libfabric
# (/opt/amazon/efa) and the aws-ofi-nccl plugin (/opt/amazon/ofi-nccl), which NCCL - also the one bundled in
# PyTorch's wheels - loads from LD_LIBRARY_PATH. Nodes without an EFA device (eval, data) are left as they are.
_solar_fi_info="$(command -v fi_info || echo /opt/amazon/efa/bin/fi_info)"
if [ -x "$_solar_fi_info" ] && "$_solar_fi_info" -p efa >/dev/null 2>&1; then
  export FI_PROVIDER=efa                  # libfabric: use the EFA device, never its TCP provider
  export FI_EFA_USE_DEVICE_RDMA=1         # GPUDirect RDMA on p4d/p4de/p5
  export FI_EFA_FORK_SAFE=1               # Ray and DataLoaders fork worker processes
  export NCCL_SOCKET_IFNAME='^lo,docker'  # NCCL's bootstrap: any real interface, never loopback or docker
  export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
  export LD_LIBRARY_PATH="/opt/amazon/ofi-nccl/lib:/opt/amazon/efa/lib:${LD_LIBRARY_PATH:-}"
fi
unset _solar_fi_info
