// SPDX-License-Identifier: MIT
/*
 * txtop: the kernel side of the TX-path tracer, compiled at run time by bcc (probes/bpf/tracer.py).
 *
 * Rules this file keeps, because the kernel headers bcc compiles it against are usually NOT
 * the running kernel's (see docs in probes/bpf/headers.py):
 *   - only tracepoints: classic ones (bcc builds their argument struct from the tracefs
 *     format file at run time) where we need argument values, raw ones where the arguments
 *     are a pointer used as an identity or a plain scalar;
 *   - never dereference a kernel struct through the headers' layouts: struct members are read
 *     with bpf_probe_read_kernel at offsets resolved from the running kernel's BTF
 *     (probes/bpf/btf.py passes them as TXTOP_OFF_<STRUCT>_<MEMBER>; without them TXTOP_BTF is
 *     undefined and no kernel memory is read at all); user memory is read only through
 *     user-ABI structs (struct sockaddr, struct user_msghdr) of the sending thread, inside its
 *     syscall.
 *
 * Per packet, outside samples, each probe does a per-CPU lookup or two. Sampled packets are
 * tracked in an LRU hash keyed by skb address and reported once, to a ring buffer, when the
 * track ends. tracer.py passes the -D options below after checking tracefs, and abi.py's
 * layouts and constants as -D TXTOP_ABI (checked by the static assertions after the structs).
 */

#ifndef TXTOP_RINGBUF_PAGES
#define TXTOP_RINGBUF_PAGES 64
#endif
#ifndef TXTOP_TRACK_ENTRIES
#define TXTOP_TRACK_ENTRIES 4096
#endif
#ifndef TXTOP_QUEUE_ENTRIES
#define TXTOP_QUEUE_ENTRIES 4096
#endif
#ifndef TXTOP_OWNER_ENTRIES
#define TXTOP_OWNER_ENTRIES 16384
#endif
#define TXTOP_BLOOM_SLOTS 16384 /* power of two */

#define IFNAMSIZ 16
#define TASK_COMM_LEN 16
#define NET_TX_SOFTIRQ 2  /* include/linux/interrupt.h: HI, TIMER, NET_TX, NET_RX, ... */
#define NET_RX_SOFTIRQ 3
/* include/linux/netdevice.h __QUEUE_STATE_DRV_XOFF (bit 0) | __QUEUE_STATE_STACK_XOFF (bit 1):
 * the driver (ring full) or BQL stopped the queue. */
#define TXQ_XOFF_MASK 0x3UL
#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define TCP_SYN_SENT 2 /* include/net/tcp_states.h */
#define TCP_CLOSE 7
#define OWNER_REFRESH_SENDS 256 /* a socket's owner entry is refreshed every this many sends */
#define DEV_RECHECK_PACKETS 1024 /* the interface filter's per-CPU verdict is re-read this often */

/* Stage indexes, in txtop.core.model.STAGES order (abi.py ST_*). */
enum {
	ST_SENDTO,
	ST_DEV_QUEUE,
	ST_QDISC_ENQUEUE,
	ST_QDISC_DEQUEUE,
	ST_START_XMIT,
	ST_XMIT,
	ST_FREE,
	N_STAGES,
};

/* How a track ended. */
enum { END_COMPLETE, END_AGED, END_LOST };
enum { FREE_NONE, FREE_CONSUME, FREE_DROP };
enum { SYS_NONE, SYS_SENDTO, SYS_SENDMSG, SYS_SENDMMSG };
/* record.flags */
#define F_QUEUE 0x1     /* queue, gso_segs, protocol are set (net_dev_start_xmit seen) */
#define F_RC 0x2        /* xmit_rc is set (net_dev_xmit seen) */
#define F_TXQ_STATE 0x4 /* txq_state is set (qdisc_dequeue seen) */
#define F_REASON 0x8    /* drop_reason is set (kfree_skb with a reason field) */
#define F_HANDED_ON 0x10 /* the skb went on to another dev_queue (stacked device) */
#define F_QMAP 0x20     /* queue set at net_dev_queue from skb->queue_mapping (the TX queue
			 * picked before the qdisc: a packet dropped there still has one) */
#define F_PARKED 0x40   /* ended, but the ring buffer refused its record: left in tracks for
			 * the next touch of its address or user space's scan (end says how) */
/* record.via: how the owner (tgid, tid, comm, cgroup_id) was found */
enum { VIA_NONE, VIA_SYSCALL, VIA_SOCKET, VIA_KERNEL };
/* record.flow_flags: what the packet headers read at net_dev_queue gave */
#define FL_L3 0x1       /* l3_proto set; with an IP l3, saddr/daddr/l4_proto too */
#define FL_PORTS 0x2    /* sport/dport from a TCP/UDP/UDP-Lite/SCTP header */
#define FL_ICMP 0x4     /* sport/dport hold the ICMP/ICMPv6 type/code */
#define FL_TCP 0x8      /* tcp_flags set */
#define FL_VLAN 0x10    /* vlan holds the 802.1Q TCI */
#define FL_ENCAP 0x20   /* the headers read are the outer ones of a tunnel */
#define FL_FRAG 0x40    /* an IP fragment without the L4 header */

/* Probe ids: the per-probe loss counters are indexed by them; abi.py PROBE_IDS names them. */
enum {
	P_SYS_EXIT,
	P_DEV_QUEUE,
	P_QDISC_ENQUEUE,
	P_QDISC_DEQUEUE,
	P_START_XMIT,
	P_XMIT,
	P_CONSUME_SKB,
	P_KFREE_SKB,
	N_PROBES,
};

/* Counters in the per-CPU "stats" array. */
enum {
	S_SAMPLED,        /* tracks started */
	S_RATE_LIMITED,   /* picked by 1-in-N but refused by the token bucket */
	S_EMITTED,        /* records submitted to the ring buffer */
	S_TRACK_FULL,     /* track insert failed */
	S_TRACK_LOST,     /* address seen again at dev_queue before its free: ended as lost */
	S_TRACK_AGED,     /* found too old at a later touch: ended as aged */
	S_DQL_STALL,      /* napi:dql_stall_detected */
	S_COUNTER_FULL,   /* a per-queue counter map was full: that packet went uncounted */
	S_XMIT_PACKETS,   /* net_dev_start_xmit runs, all devices: the rate auto duty reads */
	S_NO_FLOW,        /* sampled, but its network header could not be read */
	S_FLOW_FILTERED,  /* refused at the sampling decision by the flow (protocol/port/host) filter */
	S_RB_PARKED,      /* a record the ring refused, kept in its map for a retry (not lost) */
	S_RB_FULL,        /* + probe id: ring buffer reservation failed in that probe */
	N_STATS = S_RB_FULL + N_PROBES,
};

/* One sampled packet. The same bytes are the track (map value) and the ring-buffer record;
 * user space unpacks this exact layout (abi.py RECORD_FIELDS: little endian, no implicit
 * padding). */
struct txtop_record {
	u64 skbaddr;           /* identity, with first_ns: address reuse never splices */
	u64 first_ns;          /* when the track started (net_dev_queue) */
	u64 ts[N_STAGES];      /* CLOCK_MONOTONIC ns per stage; 0 = stage not seen */
	u64 sys_exit_ns;       /* the tied send syscall's return */
	u64 txq_state;         /* qdisc_dequeue: txq->state bits */
	u64 location;          /* consume_skb/kfree_skb call site (kernel text address) */
	u64 cgroup_id;         /* the owner's cgroup v2 id at its send; 0 = unknown */
	u64 owner_ns;          /* when the owner was seen sending (socket: its last noted send) */
	u32 tgid;              /* the owner (see via); 0 = none */
	u32 tid;
	u32 len;
	s32 ifindex;           /* from the qdisc tracepoints; 0 = unknown */
	s32 xmit_rc;
	u32 drop_reason;
	u32 sample_every;
	u32 sample_max_per_s;
	u8 saddr[16];          /* network order; IPv4 in the first 4 bytes (FL_L3 with an IP l3) */
	u8 daddr[16];
	u16 cpu[N_STAGES];
	u16 queue;
	u16 gso_segs;
	u16 protocol;          /* ethertype, host order (net_dev_start_xmit's protocol) */
	u16 dport;             /* host order: the header's (FL_PORTS), ICMP code (FL_ICMP), else
				* the sender's sockaddr; 0 = unknown */
	u16 sport;             /* host order: the header's (FL_PORTS), ICMP type (FL_ICMP) */
	u16 vlan;              /* 802.1Q TCI (FL_VLAN) */
	u16 l3_proto;          /* ethertype of the network header read (FL_L3), host order */
	u8 l4_proto;           /* IPPROTO_* (FL_L3 with an IP l3, not a bare fragment) */
	u8 tcp_flags;          /* FL_TCP */
	u8 end;
	u8 free_kind;
	u8 syscall;
	u8 flags;
	u8 via;                /* VIA_*: how tgid/tid/comm/cgroup_id were found */
	u8 flow_flags;         /* FL_* */
	char comm[TASK_COMM_LEN];
	char dev[IFNAMSIZ];
	u32 netns;             /* the device's network namespace (net->ns.inum); 0 = unknown */
};

/* A send syscall returned after its packet's track had ended (the skb was freed inside the
 * syscall, as on veth/lo): user space joins it to the record by (skbaddr, first_ns). */
struct txtop_exit_record {
	u64 skbaddr;
	u64 first_ns;
	u64 sys_exit_ns;
	u32 tid;
	u32 pad;
};

struct txtop_config {
	u32 sample_every;      /* 1-in-N at net_dev_queue (1 = every packet); 0 = not configured */
	u32 max_per_s;         /* token bucket rate */
	u32 burst;             /* token bucket depth */
	u32 filter_dev;        /* 1: only devices in dev_filter / ifindex_filter */
	u32 filter_pid;        /* 1: only packets tied to a send syscall of a pid_filter tgid */
	u32 generation;        /* bumped by user space each time a trace window opens */
	u32 filter_flow;       /* 1: only packets matching flow_filter (read at the decision) */
	u32 filter_gen;        /* bumped by user space each time the filters are written */
	u64 track_timeout_ns;  /* older tracks are ended as aged at their next touch */
	u64 user_ended;        /* entries user space removed (aging, evictions): see tracks_live */
};

/* Entries in tracks + sys_pending = created - ended - user_ended. */
struct txtop_gate {
	u64 created;           /* inserted (atomic) */
	u64 ended;             /* deleted by this program (atomic) */
};

struct txtop_bucket {
	u64 last_ns;
	s64 nanotokens;        /* 1 token = 1e9 nanotokens, so refill needs no division */
};

/* A device as the kernel side keys it: ifindex is unique only within a network namespace,
 * so the namespace's inode number (net->ns.inum, 0 without BTF offsets for it) goes with it. */
struct txtop_devkey {
	u32 netns;
	s32 ifindex;
};

#ifdef TXTOP_BTF
/* Per-CPU cache of what a net_device pointer stands for (see dev_info): reading ifindex and
 * the namespace costs three kernel reads and the interface filter a hash lookup, for every
 * packet, while a CPU sends on one or two devices. Valid for the filters of generation gen
 * and DEV_RECHECK_PACKETS uses (a device re-made at the same address). */
struct txtop_devcache {
	u64 dev;
	struct txtop_devkey key;
	u32 slot;              /* its row in txq_counts (dev_slots), or NO_SLOT */
	u32 gen;
	u16 uses;
	u8 pass;               /* the interface filter lets it through */
	u8 pad;
};
#define DEV_CACHE_WAYS 4
#endif
/* Per-queue counters by index, not by hash: a device gets a slot (dev_slots, handed out by
 * the kernel side at its first packet), its queue q the entry slot * SLOT_QUEUES + q of the
 * per-CPU array txq_counts. Devices beyond the slots and queues beyond SLOT_QUEUES are
 * counted in the txq_stats hash instead. */
#define SLOTS 64
#define SLOT_QUEUES 64
#define NO_SLOT 0xFFFFFFFF

/* Per-CPU scratch: the send syscall in progress on this CPU, the last start_xmit, sampling. */
struct txtop_cpu {
	u64 sys_enter_ns;
	u64 sys_uaddr;         /* sockaddr (sendto) / user_msghdr (sendmsg) / mmsghdr (sendmmsg),
				* or the syscall's struct pt_regs (raw sys_enter: sys_regs) */
	u32 sys_tid;           /* 0 = no send syscall in progress */
	u32 sys_nr;            /* SYS_* */
	u32 sys_claimed;       /* its first dev_queue was seen */
	u32 countdown;         /* packets left until the next 1-in-N pick */
	u64 sx_skb;            /* last net_dev_start_xmit on this CPU, for net_dev_xmit's rc */
#ifdef TXTOP_BTF
	struct txtop_devkey sx_key;
#else
	char sx_dev[IFNAMSIZ];
#endif
	u32 sx_queue;
	u32 sys_regs;          /* sys_uaddr is the pt_regs: the address is read only if tied */
	u32 sys_gen;           /* config.generation when sys_tid was set: a syscall entered in an
				* earlier trace window (its exit unseen) is never tied to a packet */
	u64 own_sk;            /* the socket owner this CPU noted last, and by which thread: */
	u32 own_tid;           /* repeated sends skip the map until OWNER_REFRESH_SENDS */
	u32 own_sends;
#ifdef TXTOP_BTF
	struct txtop_devcache devs[DEV_CACHE_WAYS];
#endif
};

/* Who last sent on a socket (map owners, keyed by the struct sock address): filled in process
 * context by the socket send tracepoints, read at net_dev_queue through skb->sk. */
struct txtop_owner {
	u64 ns;                /* when noted */
	u64 cgroup_id;
	u32 tgid;
	u32 tid;
	char comm[TASK_COMM_LEN];
};

/* A packet's headers as read at net_dev_queue (see read_flow). */
struct txtop_flow {
	u8 saddr[16];
	u8 daddr[16];
	u16 sport;
	u16 dport;
	u16 vlan;
	u16 l3_proto;
	u8 l4_proto;
	u8 tcp_flags;
	u8 flags;              /* FL_* */
	u8 pad;
};

/* The flow filter (map flow_filter; ports in port_filter, prefixes in host_filter): each part
 * ORs its alternatives, the parts AND; a part that is off does not restrict. Maps, not loops:
 * any number of port ranges and prefixes, and little for the verifier to walk. */
struct txtop_flow_filter {
	u64 l4_mask[4];        /* bit n: IP protocol n is wanted */
	u32 l3_mask;           /* L3_* bits: network headers wanted whatever their L4 */
	u32 any_proto;         /* 1: no protocol part */
	u32 use_ports;         /* 1: the source or the destination port must be in port_filter */
	u32 use_hosts;         /* 1: the source or the destination address in host_filter */
};
#define L3_IPV4 0x1
#define L3_IPV6 0x2
#define L3_ARP 0x4
#define L3_VLAN 0x8       /* a tagged packet */
#define ETH_P_ARP 0x0806

/* host_filter key: prefixlen counts the family byte's 8 bits, then the address's. */
struct txtop_host_key {
	u32 prefixlen;
	u8 data[17];           /* 4 or 6, then the address (network order; IPv4 in 4 bytes) */
};

struct txtop_devname {
	char name[IFNAMSIZ];
};

/* Per-queue counters: by (namespace, ifindex) with the raw net_dev_start_xmit (BTF offsets),
 * by name with the classic one (its only device field). */
struct txtop_qkey {
#ifdef TXTOP_BTF
	struct txtop_devkey dev;
#else
	char dev[IFNAMSIZ];
#endif
	u32 queue;
};

struct txtop_qval {
	u64 packets;
	u64 bytes;
	u64 gso_segs;          /* segments on the wire: gso_segs, or 1 for a non-GSO skb */
};

struct txtop_ekey {
#ifdef TXTOP_BTF
	struct txtop_devkey dev;
#else
	char dev[IFNAMSIZ];
#endif
	u32 queue;
	s32 rc;
};

struct txtop_skey {
	u32 netns;             /* 0: the classic qdisc_dequeue (no namespace known) */
	s32 ifindex;
	u32 parent;            /* qdisc parent handle: the mq class names the TX queue */
};

struct txtop_softirq {
	u64 runs[2];           /* [0] NET_TX, [1] NET_RX */
	u64 ns[2];             /* estimated time spent (see below) */
	u64 entry_ns[2];
};

struct txtop_pending {
	u64 skbaddr;
	u64 first_ns;
	u64 exit_ns;           /* the send ended but the ring refused its exit record: user
				* space's scan reports it (0 = still inside the send) */
};

/* What user space decodes (probes/bpf/abi.py) is checked here, where the compiler knows the
 * layouts: tracer.py passes abi.py's struct sizes, field offsets and constant values as one
 * -D TXTOP_ABI="TXTOP_ABI_SIZE(...) TXTOP_ABI_OFFSET(...) TXTOP_ABI_VALUE(...) ..." list
 * (abi.compile_defines), expanded into static assertions. A field or constant abi.py names and
 * this file lacks fails the compile as well. */
#ifndef TXTOP_ABI
#error "TXTOP_ABI not defined: load this file through probes/bpf/tracer.py (abi.compile_defines)"
#endif
#define TXTOP_ABI_SIZE(s, size) \
	_Static_assert(sizeof(struct s) == (size), "abi.py: size of struct " #s);
#define TXTOP_ABI_OFFSET(s, field, off) \
	_Static_assert(__builtin_offsetof(struct s, field) == (off), "abi.py: offset of " #s "." #field);
#define TXTOP_ABI_VALUE(name, value) \
	_Static_assert((name) == (value), "abi.py: value of " #name);
TXTOP_ABI

BPF_ARRAY(config, struct txtop_config, 1);
BPF_ARRAY(gate, struct txtop_gate, 1);
BPF_ARRAY(bucket, struct txtop_bucket, 1);
BPF_PERCPU_ARRAY(cpu_state, struct txtop_cpu, 1);
BPF_PERCPU_ARRAY(stats, u64, N_STATS);
BPF_PERCPU_ARRAY(softirq, struct txtop_softirq, 1);
BPF_HASH(dev_filter, struct txtop_devname, u8, 256);
BPF_HASH(ifindex_filter, struct txtop_devkey, u8, 256);
BPF_HASH(pid_filter, u32, u8, 1024);
/* Devices whose driver frees the skb after transmission (TX completion: NICs). On the others
 * (veth, lo, tun, bridges...) net_dev_xmit hands the skb to another stack: the track ends
 * there, and whatever frees it later is not part of this packet's TX path. */
BPF_HASH(tx_completion, struct txtop_devname, u8, 256);
BPF_TABLE("lru_hash", u64, struct txtop_record, tracks, TXTOP_TRACK_ENTRIES);
BPF_TABLE("lru_hash", u32, struct txtop_pending, sys_pending, 1024);
BPF_TABLE("lru_hash", u64, struct txtop_owner, owners, TXTOP_OWNER_ENTRIES);
BPF_ARRAY(flow_filter, struct txtop_flow_filter, 1);
BPF_ARRAY(port_filter, u64, 1024); /* 65536 bits: port p wanted */
BPF_LPM_TRIE(host_filter, struct txtop_host_key, u8, 1024);
BPF_PERCPU_ARRAY(scratch, struct txtop_record, 1); /* a record being built (too big for the stack) */
/* "Might this skb / thread be tracked?": counts of live entries of tracks / sys_pending per
 * hash slot, so that the probes every packet passes skip their hash lookup (a miss costs
 * more than the rest of the program) unless the slot is taken. An entry user space removes
 * leaves its count behind: a false "maybe", never a miss. */
BPF_ARRAY(track_bloom, u32, TXTOP_BLOOM_SLOTS);
BPF_ARRAY(pending_bloom, u32, TXTOP_BLOOM_SLOTS);
BPF_PERCPU_HASH(txq_stats, struct txtop_qkey, struct txtop_qval, TXTOP_QUEUE_ENTRIES);
#ifdef TXTOP_BTF
BPF_PERCPU_ARRAY(txq_counts, struct txtop_qval, SLOTS * SLOT_QUEUES);
BPF_HASH(dev_slots, struct txtop_devkey, u32, SLOTS);
BPF_ARRAY(slot_next, u64, 1); /* u64: a 32-bit fetch-and-add needs alu32 */
#endif
BPF_PERCPU_HASH(xmit_errors, struct txtop_ekey, u64, 1024);
BPF_PERCPU_HASH(txq_stopped, struct txtop_skey, u64, TXTOP_QUEUE_ENTRIES);
BPF_RINGBUF_OUTPUT(events, TXTOP_RINGBUF_PAGES);

static __always_inline struct txtop_config *get_config(void)
{
	u32 zero = 0;
	return config.lookup(&zero);
}

static __always_inline struct txtop_cpu *get_cpu_state(void)
{
	u32 zero = 0;
	return cpu_state.lookup(&zero);
}

static __always_inline void stat_inc(u32 idx)
{
	u64 *v = stats.lookup(&idx);
	if (v)
		(*v)++;
}

/* Is anything tracked (a packet, or a syscall waiting for its return)? Lets every probe skip
 * its hash lookup in the common case. */
static __always_inline int tracks_live(struct txtop_config *c)
{
	u32 zero = 0;
	struct txtop_gate *g = gate.lookup(&zero);
	return g && g->created > g->ended + c->user_ended;
}

static __always_inline void gate_add(int created)
{
	u32 zero = 0;
	struct txtop_gate *g = gate.lookup(&zero);
	if (!g)
		return;
	if (created)
		__sync_fetch_and_add(&g->created, 1);
	else
		__sync_fetch_and_add(&g->ended, 1);
}

/* skb addresses come from a slab (objects of 256 bytes or so): bits 8 and up vary. */
static __always_inline u32 bloom_slot(u64 v)
{
	return (u32)((v >> 8) ^ (v >> 22)) & (TXTOP_BLOOM_SLOTS - 1);
}

/* (bcc rewrites map.lookup() on a named map only: one pair of helpers per map.) */
static __always_inline void track_bloom_add(u64 skb, int delta)
{
	u32 i = bloom_slot(skb);
	u32 *n = track_bloom.lookup(&i);
	if (n)
		__sync_fetch_and_add(n, delta);
}

static __always_inline int track_maybe(u64 skb)
{
	u32 i = bloom_slot(skb);
	u32 *n = track_bloom.lookup(&i);
	return n && *n;
}

static __always_inline void pending_bloom_add(u32 tid, int delta)
{
	u32 i = bloom_slot((u64)tid << 8);
	u32 *n = pending_bloom.lookup(&i);
	if (n)
		__sync_fetch_and_add(n, delta);
}

static __always_inline int pending_maybe(u32 tid)
{
	u32 i = bloom_slot((u64)tid << 8);
	u32 *n = pending_bloom.lookup(&i);
	return n && *n;
}

/* Token bucket shared by all CPUs, lock-free: one CPU wins the refill by compare-and-swap on
 * last_ns; takes are atomic adds that are undone when they overdraw. Runs only for packets
 * already picked by the 1-in-N countdown. */
static __always_inline int take_token(struct txtop_config *c, u64 now)
{
	u32 zero = 0;
	struct txtop_bucket *b = bucket.lookup(&zero);
	if (!b || c->max_per_s == 0)
		return 0;
	u64 last = b->last_ns;
	int refill_due = now > last + 1000000; /* refill at most once a millisecond */
	if (!refill_due && b->nanotokens < 1000000000LL)
		return 0; /* empty: refuse without touching the shared line */
	if (refill_due) {
		if (__sync_val_compare_and_swap(&b->last_ns, last, now) == last) {
			u64 elapsed = now - last;
			if (elapsed > 1000000000ULL)
				elapsed = 1000000000ULL;
			s64 cap = (s64)c->burst * 1000000000LL;
			s64 add = (s64)(elapsed * c->max_per_s);
			s64 cur = b->nanotokens;
			if (cur + add > cap)
				add = cap - cur;
			if (add > 0)
				__sync_fetch_and_add(&b->nanotokens, add);
		}
	}
	s64 before = __sync_fetch_and_add(&b->nanotokens, -1000000000LL);
	if (before >= 1000000000LL)
		return 1;
	__sync_fetch_and_add(&b->nanotokens, 1000000000LL);
	return 0;
}

/* A random countdown with mean N: avoids aliasing with periodic traffic. */
static __always_inline u32 next_countdown(u32 every)
{
	if (every <= 1)
		return 1;
	return 1 + bpf_get_prandom_u32() % (2 * every - 1);
}

/* The sampling decision: the 1-in-N countdown, then the token bucket. Sets *now when picked. */
static __always_inline int picked(struct txtop_config *c, struct txtop_cpu *pc, u64 *now)
{
	if (pc->countdown > 1) {
		pc->countdown--;
		return 0;
	}
	pc->countdown = next_countdown(c->sample_every);
	*now = bpf_ktime_get_ns();
	if (!take_token(c, *now)) {
		stat_inc(S_RATE_LIMITED);
		return 0;
	}
	return 1;
}

/* The accounting of a track leaving the map (the kernel side deleted it). */
static __always_inline void track_gone(u64 key, u8 end)
{
	gate_add(0);
	track_bloom_add(key, -1);
	if (end == END_AGED)
		stat_inc(S_TRACK_AGED);
	else if (end == END_LOST)
		stat_inc(S_TRACK_LOST);
}

/* End a track: copy it to the ring buffer, then delete it. Whoever deletes it owns the end,
 * so a track racing on two CPUs is reported once. When the ring refuses the record (full,
 * or busy on this CPU: a program in an interrupt nested on one holding the ring's lock,
 * which the kernel refuses rather than spin on), the track is parked instead: marked ended
 * and left in the map, to be reported at the next touch of its address or by user space's
 * scan (tracks.py) within a second. Returns 0 when it parked it. */
static __always_inline int end_track(struct txtop_record *t, u8 end, u32 probe)
{
	u64 key = t->skbaddr;
	struct txtop_record *r = events.ringbuf_reserve(sizeof(struct txtop_record));
	if (!r) {
		if (!(t->flags & F_PARKED)) {
			t->end = end;
			t->flags |= F_PARKED;
			stat_inc(S_RB_PARKED);
		}
		return 0;
	}
	__builtin_memcpy(r, t, sizeof(struct txtop_record));
	r->end = end;
	r->flags &= ~F_PARKED;
	if (tracks.delete(&key) != 0) {
		events.ringbuf_discard(r, 0);
		return 1;
	}
	track_gone(key, end);
	events.ringbuf_submit(r, 0);
	stat_inc(S_EMITTED);
	return 1;
}

/* The live track of skb, or NULL. A track older than the timeout is ended as aged. */
static __always_inline struct txtop_record *track_of(struct txtop_config *c, u64 skb, u64 now,
						     u32 probe)
{
	if (!skb || !track_maybe(skb))
		return 0;
	struct txtop_record *t = tracks.lookup(&skb);
	if (!t)
		return 0;
	if (t->flags & F_PARKED) { /* ended already: try its record again, touch nothing */
		end_track(t, t->end, probe);
		return 0;
	}
	if (now - t->first_ns > c->track_timeout_ns) {
		end_track(t, END_AGED, probe);
		return 0;
	}
	return t;
}

static __always_inline void set_stage(struct txtop_record *t, u32 st, u64 now)
{
	if (st < N_STAGES) {
		t->ts[st] = now;
		t->cpu[st] = bpf_get_smp_processor_id();
	}
}

/* The destination port the sender named, read from its own memory (user ABI structs). */
static __always_inline u16 sender_dport(u32 nr, u64 uaddr)
{
	struct {
		u16 family;
		u16 port_be;
	} sa = {};
	void *name = (void *)uaddr;
	if (!uaddr)
		return 0;
	if (nr != SYS_SENDTO) {
		/* struct user_msghdr and struct mmsghdr both start with void __user *msg_name */
		if (bpf_probe_read_user(&name, sizeof(name), (void *)uaddr) != 0 || !name)
			return 0;
	}
	if (bpf_probe_read_user(&sa, sizeof(sa), name) != 0)
		return 0;
	if (sa.family != AF_INET && sa.family != AF_INET6)
		return 0;
	return (u16)((sa.port_be >> 8) | (sa.port_be << 8));
}

/* ---- packet headers and socket owners (kernel struct reads: BTF offsets only) ------------- */

#ifdef TXTOP_BTF
/* A member of a kernel struct at its BTF offset; sizes are checked by prerequisites.py. */
#define KREAD(dst, base, K) \
	bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)(base) + TXTOP_OFF_##K)

/* A net_device's network namespace, dev->nd_net.net->ns.inum; 0 where this kernel's BTF
 * lacks the members (no CONFIG_NET_NS) or the reads fail. */
static __always_inline u32 dev_netns(u64 dev)
{
	u32 inum = 0;
#if TXTOP_HAS_NET_DEVICE_ND_NET_NET && TXTOP_HAS_NET_NS_INUM
	u64 net = 0;
	if (KREAD(net, dev, NET_DEVICE_ND_NET_NET) == 0 && net)
		KREAD(inum, net, NET_NS_INUM);
#endif
	return inum;
}

/* The device's slot in txq_counts, handed out at its first packet (a race between two CPUs
 * costs a slot number, never a double: the insert is BPF_NOEXIST, the loser re-reads). */
static __always_inline u32 dev_slot(struct txtop_devkey *k)
{
	u32 *have = dev_slots.lookup(k);
	if (have)
		return *have;
	u32 zero = 0;
	u64 *next = slot_next.lookup(&zero);
	if (!next || *next >= SLOTS)
		return NO_SLOT;
	u32 slot = (u32)__sync_fetch_and_add(next, 1);
	if (slot >= SLOTS)
		return NO_SLOT;
	if (dev_slots.insert(k, &slot) != 0) {
		have = dev_slots.lookup(k);
		return have ? *have : NO_SLOT;
	}
	return slot;
}

/* What net_device *dev stands for (see struct txtop_devcache): its (namespace, ifindex) and
 * the interface filter's verdict. NULL only when dev is. */
static __always_inline struct txtop_devcache *dev_info(struct txtop_config *c,
						       struct txtop_cpu *pc, u64 dev)
{
	if (!dev)
		return 0;
	u32 way = (u32)((dev >> 10) ^ (dev >> 16)) & (DEV_CACHE_WAYS - 1);
	struct txtop_devcache *d = &pc->devs[way];
	if (d->dev == dev && d->gen == c->filter_gen && ++d->uses < DEV_RECHECK_PACKETS)
		return d;
	struct txtop_devkey k = {.netns = dev_netns(dev)};
	KREAD(k.ifindex, dev, NET_DEVICE_IFINDEX);
	d->dev = dev;
	d->key = k;
	d->gen = c->filter_gen;
	d->uses = 0;
	d->pass = !c->filter_dev || ifindex_filter.lookup(&k) != 0;
	d->slot = dev_slot(&k);
	return d;
}

static __always_inline u16 be16(u16 v)
{
	return (u16)((v >> 8) | (v << 8));
}

static __always_inline int is_encap_port(u16 port)
{
	/* VXLAN, VXLAN-GPE, Geneve, the Linux VXLAN default, GTP-U */
	return port == 4789 || port == 4790 || port == 6081 || port == 8472 || port == 2152;
}

static __always_inline int is_encap_proto(u8 proto)
{
	/* IPIP, IPv6-in-IP, GRE, EtherIP, L2TPv3, MPLS-in-IP */
	return proto == 4 || proto == 41 || proto == 47 || proto == 97 || proto == 115 ||
	       proto == 137;
}

/* The L4 header at l4 (TCP/UDP/UDP-Lite/SCTP ports, TCP flags, ICMP type/code). */
static __always_inline void read_l4(struct txtop_flow *f, void *l4)
{
	u8 h[14] = {};
	u8 p = f->l4_proto;
	if (p == 6) {
		if (bpf_probe_read_kernel(h, 14, l4) != 0)
			return;
		f->tcp_flags = h[13];
		f->flags |= FL_TCP;
	} else if (p == 17 || p == 136 || p == 132) {
		if (bpf_probe_read_kernel(h, 4, l4) != 0)
			return;
	} else if (p == 1 || p == 58) {
		if (bpf_probe_read_kernel(h, 2, l4) != 0)
			return;
		f->sport = h[0]; /* type */
		f->dport = h[1]; /* code */
		f->flags |= FL_ICMP;
		return;
	} else {
		return;
	}
	f->sport = ((u16)h[0] << 8) | h[1];
	f->dport = ((u16)h[2] << 8) | h[3];
	f->flags |= FL_PORTS;
	if (p == 17 && is_encap_port(f->dport))
		f->flags |= FL_ENCAP;
}

/* IPv6 extension headers before the L4 one: hop-by-hop, routing, destination options,
 * fragment, AH (at most 4; a longer chain leaves the L4 part unread). */
static __always_inline void *skip_ipv6_ext(struct txtop_flow *f, void *l4, u8 *next)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		u8 nh = *next;
		u8 h[4] = {};
		if (nh != 0 && nh != 43 && nh != 60 && nh != 44 && nh != 51)
			return l4;
		if (bpf_probe_read_kernel(h, 4, l4) != 0)
			return 0;
		*next = h[0];
		if (nh == 44) {
			u16 off = (((u16)h[2] << 8) | h[3]) & 0xFFF8;
			if (off)
				f->flags |= FL_FRAG;
			l4 += 8;
		} else if (nh == 51) {
			l4 += ((u32)h[1] + 2) * 4;
		} else {
			l4 += ((u32)h[1] + 1) * 8;
		}
	}
	u8 last = *next;
	if (last == 0 || last == 43 || last == 60 || last == 44 || last == 51)
		return 0;
	return l4;
}

/* The packet's headers from skb->head + network_header (the transport header is found from
 * the IP header itself: it may be unset this early). skb->protocol may be unset on the TX path
 * before the device layer: then the IP version nibble says which header this is. Returns 0
 * when nothing could be read. */
static __always_inline int read_flow(u64 skb, struct txtop_flow *f)
{
	void *s = (void *)skb;
	u64 head = 0;
	u16 nh_off = 0, proto_be = 0;
	if (KREAD(head, s, SK_BUFF_HEAD) != 0 || !head)
		return 0;
	if (KREAD(nh_off, s, SK_BUFF_NETWORK_HEADER) != 0)
		return 0;
	KREAD(proto_be, s, SK_BUFF_PROTOCOL);
	u16 proto = be16(proto_be);
#if TXTOP_HAS_SK_BUFF_VLAN_PRESENT
	u8 vp = 0;
	KREAD(vp, s, SK_BUFF_VLAN_PRESENT);
	if ((vp >> TXTOP_SHIFT_SK_BUFF_VLAN_PRESENT) & 1) {
#else
	u16 vlan_proto = 0;
	KREAD(vlan_proto, s, SK_BUFF_VLAN_PROTO);
	if (vlan_proto) { /* a tag held out of band (skb_vlan_tag_present) */
#endif
		KREAD(f->vlan, s, SK_BUFF_VLAN_TCI);
		f->flags |= FL_VLAN;
	}
	if (nh_off == 0 || nh_off == 0xFFFF)
		return 0;
	void *nh = (void *)head + nh_off;
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		/* tag in the frame: the TCI follows the outer ethertype at the MAC header */
		u16 mac_off = 0;
		if (KREAD(mac_off, s, SK_BUFF_MAC_HEADER) == 0 && mac_off != 0xFFFF &&
		    mac_off + 18 <= nh_off) {
			u16 tci = 0;
			bpf_probe_read_kernel(&tci, 2, (void *)head + mac_off + 14);
			f->vlan = be16(tci);
			f->flags |= FL_VLAN;
		}
		proto = 0; /* the network header's version nibble tells the rest */
	}
	u8 ip[40] = {};
	if (proto != 0 && proto != ETH_P_IP && proto != ETH_P_IPV6) {
		f->l3_proto = proto; /* ARP and other non-IP: named by ethertype, no addresses */
		f->flags |= FL_L3;
		return 1;
	}
	if (bpf_probe_read_kernel(ip, 20, nh) != 0)
		return 0;
	u8 version = ip[0] >> 4;
	if (proto == 0)
		proto = version == 4 ? ETH_P_IP : version == 6 ? ETH_P_IPV6 : 0;
	if (proto == ETH_P_IP && version == 4) {
		u32 ihl = (ip[0] & 0xF) * 4;
		if (ihl < 20)
			return 0;
		__builtin_memcpy(f->saddr, &ip[12], 4);
		__builtin_memcpy(f->daddr, &ip[16], 4);
		f->l3_proto = ETH_P_IP;
		f->l4_proto = ip[9];
		f->flags |= FL_L3;
		if (((((u16)ip[6] << 8) | ip[7]) & 0x1FFF) != 0) {
			f->flags |= FL_FRAG; /* not the first fragment: no L4 header here */
		} else {
			read_l4(f, nh + ihl);
		}
	} else if (proto == ETH_P_IPV6 && version == 6) {
		if (bpf_probe_read_kernel(ip, 40, nh) != 0)
			return 0;
		__builtin_memcpy(f->saddr, &ip[8], 16);
		__builtin_memcpy(f->daddr, &ip[24], 16);
		f->l3_proto = ETH_P_IPV6;
		f->flags |= FL_L3;
		u8 next = ip[6];
		void *l4 = skip_ipv6_ext(f, nh + 40, &next);
		f->l4_proto = next;
		if (l4 && !(f->flags & FL_FRAG))
			read_l4(f, l4);
	} else {
		return 0;
	}
	if (is_encap_proto(f->l4_proto))
		f->flags |= FL_ENCAP;
#if TXTOP_HAS_SK_BUFF_ENCAPSULATION
	u8 enc = 0;
	KREAD(enc, s, SK_BUFF_ENCAPSULATION);
	if ((enc >> TXTOP_SHIFT_SK_BUFF_ENCAPSULATION) & 1)
		f->flags |= FL_ENCAP; /* a tunnel driver built this skb (inner headers set) */
#endif
	return 1;
}

static __always_inline int port_wanted(u16 port)
{
	u32 idx = port >> 6;
	u64 *bits = port_filter.lookup(&idx);
	return bits && (*bits >> (port & 63)) & 1;
}

static __always_inline int host_wanted(u8 family, const u8 *addr)
{
	struct txtop_host_key k = {.prefixlen = 8 + 128};
	k.data[0] = family;
	__builtin_memcpy(&k.data[1], addr, 16);
	return host_filter.lookup(&k) != 0;
}

/* The flow filter at the sampling decision. */
static __always_inline int flow_matches(struct txtop_flow *f)
{
	u32 zero = 0;
	struct txtop_flow_filter *ff = flow_filter.lookup(&zero);
	if (!ff)
		return 1;
	u32 kind = f->l3_proto == ETH_P_IP ? L3_IPV4 : f->l3_proto == ETH_P_IPV6 ? L3_IPV6 :
		   f->l3_proto == ETH_P_ARP ? L3_ARP : 0;
	int ip = kind & (L3_IPV4 | L3_IPV6);
	if (!ff->any_proto) {
		u32 tagged = f->flags & FL_VLAN ? L3_VLAN : 0;
		int ok = (ff->l3_mask & (kind | tagged)) != 0;
		if (ip && (ff->l4_mask[(f->l4_proto >> 6) & 3] >> (f->l4_proto & 63)) & 1)
			ok = 1;
		if (!ok)
			return 0;
	}
	if (ff->use_ports && !((f->flags & FL_PORTS) &&
			       (port_wanted(f->sport) || port_wanted(f->dport))))
		return 0;
	if (ff->use_hosts) {
		u8 family = kind == L3_IPV4 ? 4 : 6;
		if (!ip || !(host_wanted(family, f->saddr) || host_wanted(family, f->daddr)))
			return 0;
	}
	return 1;
}

static __always_inline u64 skb_sock(u64 skb)
{
	u64 sk = 0;
	KREAD(sk, skb, SK_BUFF_SK);
	return sk;
}

/* Note the current thread as the owner of socket sk (process context: a send on it). */
static __always_inline void note_owner(u64 sk)
{
	struct txtop_cpu *pc = get_cpu_state();
	if (!sk || !pc)
		return;
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id;
	if (!tid)
		return;
	if (pc->own_sk == sk && pc->own_tid == tid && ++pc->own_sends < OWNER_REFRESH_SENDS)
		return; /* noted already: the common case of a sender in a loop */
	pc->own_sk = sk;
	pc->own_tid = tid;
	pc->own_sends = 0;
	u64 now = bpf_ktime_get_ns();
	struct txtop_owner *o = owners.lookup(&sk);
	if (o && o->tid == tid) {
		o->ns = now;
		return;
	}
	struct txtop_owner n = {};
	n.ns = now;
	n.tgid = id >> 32;
	n.tid = tid;
	n.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&n.comm, sizeof(n.comm));
	owners.update(&sk, &n);
}

/* --pid with identity: a packet not tied to a syscall passes when its socket's owner does. */
static __always_inline int owner_in_pid_filter(u64 skb)
{
	u64 sk = skb_sock(skb);
	if (!sk)
		return 0;
	struct txtop_owner *o = owners.lookup(&sk);
	return o && pid_filter.lookup(&o->tgid);
}

#ifdef TXTOP_HAVE_SOCK_SEND
static __always_inline void on_sys_exit(void);

/* Raw sock:sock_send_length: TP_PROTO(struct sock *sk, int ret, int flags), in process
 * context after every send/sendto/sendmsg/write/sendfile on a socket (6.3+). With
 * TXTOP_EXIT_AT_SEND it also ends the send syscall in progress (the socket layer's return,
 * just before the syscall's): raw_syscalls:sys_exit, which runs for every syscall of the
 * machine, is then not attached at all. */
int txtop_raw_sock_send(struct bpf_raw_tracepoint_args *ctx)
{
	note_owner(ctx->args[0]);
#ifdef TXTOP_EXIT_AT_SEND
	on_sys_exit();
#endif
	return 0;
}
#endif

#ifdef TXTOP_HAVE_TCP_SENDMSG
/* Raw tcp:tcp_sendmsg_locked: TP_PROTO(const struct sock *sk, const struct msghdr *msg,
 * const struct sk_buff *skb, int size_goal): process context, before the data is sent, so
 * the first segment of a write already has its owner (sock_send_length fires after). */
int txtop_raw_tcp_sendmsg(struct bpf_raw_tracepoint_args *ctx)
{
	note_owner(ctx->args[0]);
	return 0;
}
#endif

#ifdef TXTOP_HAVE_SOCK_STATE
/* Raw sock:inet_sock_set_state: TP_PROTO(const struct sock *sk, const int oldstate,
 * const int newstate). connect() moves a TCP socket to SYN_SENT in process context (its SYN
 * passes no send tracepoint); a socket that closes is forgotten (its address will be reused). */
int txtop_raw_sock_state(struct bpf_raw_tracepoint_args *ctx)
{
	u64 sk = ctx->args[0];
	int newstate = (int)ctx->args[2];
	if (newstate == TCP_SYN_SENT)
		note_owner(sk);
	else if (newstate == TCP_CLOSE)
		owners.delete(&sk);
	return 0;
}
#endif
#endif /* TXTOP_BTF */

/* ---- send syscalls: remember, per CPU, which thread is inside sendto/sendmsg/sendmmsg ---- */

static __always_inline void on_sys_enter(u32 nr, u64 uaddr, u32 from_regs)
{
	struct txtop_config *c = get_config();
	struct txtop_cpu *pc = get_cpu_state();
	if (!c || !pc || !c->sample_every)
		return;
	u64 id = bpf_get_current_pid_tgid();
	if (c->filter_pid) {
		u32 tgid = id >> 32;
		if (!pid_filter.lookup(&tgid)) {
			pc->sys_tid = 0;
			return;
		}
	}
	pc->sys_tid = (u32)id;
	pc->sys_gen = c->generation;
	pc->sys_nr = nr;
	pc->sys_claimed = 0;
	pc->sys_uaddr = uaddr;
	pc->sys_regs = from_regs;
	/* The clock is read only when this CPU's next dev_queue is due to be sampled: the
	 * entry time is needed for no other packet, and not reading it saves a clock read per
	 * send. (A tied packet sampled otherwise simply has no sendto stage.) */
	pc->sys_enter_ns = pc->countdown <= 1 ? bpf_ktime_get_ns() : 0;
}

static __always_inline void on_sys_exit(void)
{
	struct txtop_config *c = get_config();
	struct txtop_cpu *pc = get_cpu_state();
	if (!c || !pc)
		return;
	u32 tid = (u32)bpf_get_current_pid_tgid();
	if (pc->sys_tid == tid)
		pc->sys_tid = 0;
	if (!tracks_live(c))
		return;
	/* The tied packet, if any, is found by thread id: the thread may have migrated. This runs
	 * for every syscall of the machine: the bloom check spares the hash lookup. */
	if (!pending_maybe(tid))
		return;
	struct txtop_pending *p = sys_pending.lookup(&tid);
	if (!p)
		return;
	u64 skb = p->skbaddr, first = p->first_ns;
	if (p->exit_ns)
		return; /* parked: user space reports it */
	u64 now = bpf_ktime_get_ns();
	struct txtop_record *t = tracks.lookup(&skb);
	struct txtop_exit_record *r = 0;
	if (!t || t->first_ns != first) {
		/* Its track ended already (or the address now belongs to another packet): the
		 * return goes on its own record; if the ring refuses it, the pending entry keeps
		 * it for user space's scan. */
		r = events.ringbuf_reserve(sizeof(struct txtop_exit_record));
		if (!r) {
			p->exit_ns = now;
			stat_inc(S_RB_PARKED);
			return;
		}
	}
	if (sys_pending.delete(&tid) != 0) {
		if (r)
			events.ringbuf_discard(r, 0);
		return;
	}
	gate_add(0);
	pending_bloom_add(tid, -1);
	if (!r) {
		t->sys_exit_ns = now; /* still in flight: the record will carry it */
		return;
	}
	r->skbaddr = skb;
	r->first_ns = first;
	r->sys_exit_ns = now;
	r->tid = tid;
	r->pad = 0;
	events.ringbuf_submit(r, 0);
	stat_inc(S_EMITTED);
}

#ifdef TXTOP_HAVE_SYS_ENTER
/* Raw raw_syscalls:sys_enter, TP_PROTO(struct pt_regs *regs, long id): runs for every
 * syscall, and returns after one compare for all but the three sends; cheaper per send than
 * the classic syscalls:sys_enter_* (whose perf record of six arguments costs more than this
 * whole program) and detached at once when a window closes. The syscall numbers and the
 * argument registers are the native ABI's (tracer.py compiles this form only on x86_64);
 * regs is the user's register frame, its members at BTF offsets. */
int txtop_raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	long id = (long)ctx->args[1];
	/* The registers stay on the thread's kernel stack for the whole syscall: the address
	 * argument is read from them only for the packet tied to it (sys_regs_uaddr). */
	if (id == TXTOP_NR_SENDTO) {
		on_sys_enter(SYS_SENDTO, ctx->args[0], 1);
	} else if (id == TXTOP_NR_SENDMSG) {
		on_sys_enter(SYS_SENDMSG, ctx->args[0], 1);
	} else if (id == TXTOP_NR_SENDMMSG) {
		on_sys_enter(SYS_SENDMMSG, ctx->args[0], 1);
	} else {
#ifdef TXTOP_EXIT_AT_SEND
		/* Without sys_exit, a send that failed before the socket layer (no
		 * sock_send_length) would leave its tie open: the thread's next syscall closes it. */
		struct txtop_cpu *pc = get_cpu_state();
		if (pc && pc->sys_tid && pc->sys_tid == (u32)bpf_get_current_pid_tgid())
			pc->sys_tid = 0;
#endif
	}
	return 0;
}
#endif

#ifdef TXTOP_HAVE_SYS_SENDTO
TRACEPOINT_PROBE(syscalls, sys_enter_sendto)
{
	on_sys_enter(SYS_SENDTO, (u64)args->addr, 0);
	return 0;
}
#endif

#ifdef TXTOP_HAVE_SYS_SENDMSG
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg)
{
	on_sys_enter(SYS_SENDMSG, (u64)args->msg, 0);
	return 0;
}
#endif

#ifdef TXTOP_HAVE_SYS_SENDMMSG
TRACEPOINT_PROBE(syscalls, sys_enter_sendmmsg)
{
	on_sys_enter(SYS_SENDMMSG, (u64)args->mmsg, 0);
	return 0;
}
#endif

#ifdef TXTOP_HAVE_SYS_EXIT
/* Raw raw_syscalls:sys_exit, TP_PROTO(struct pt_regs *regs, long ret): no argument is used,
 * the thread id says whether this is the return of a send syscall on_sys_enter saw. Raw
 * because it detaches at once when a trace window closes (a classic syscalls:sys_exit_*
 * keeps running for the ~0.1 s its perf event takes to close); it runs for every syscall
 * while attached, and returns after one per-CPU compare and the gate check. */
int txtop_raw_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	on_sys_exit();
	return 0;
}
#endif

/* The send syscall's address argument: sendto's addr (5th), sendmsg's msg or sendmmsg's
 * mmsg (2nd), from its registers when the raw sys_enter saw it. */
static __always_inline u64 sys_user_addr(struct txtop_cpu *pc)
{
	u64 uaddr = 0;
	if (!pc->sys_regs)
		return pc->sys_uaddr;
#ifdef TXTOP_HAVE_SYS_ENTER
	if (pc->sys_nr == SYS_SENDTO)
		KREAD(uaddr, pc->sys_uaddr, PT_REGS_R8);
	else
		KREAD(uaddr, pc->sys_uaddr, PT_REGS_SI);
#endif
	return uaddr;
}

/* ---- net:net_dev_queue: where sampling is decided ---------------------------------------- */

static __always_inline int on_dev_queue(u64 skb, const char *dev, u32 len)
{
	struct txtop_config *c = get_config();
	struct txtop_cpu *pc = get_cpu_state();
	if (!c || !pc || !c->sample_every)
		return 0; /* user space has not configured us yet (programs attach first) */
	u64 now = 0;
	if (tracks_live(c) && track_maybe(skb)) {
		/* An address already tracked: either a stacked device handing the skb on (it was
		 * transmitted), or the old skb was freed where no tracepoint saw it. End the old
		 * track either way: two packets are never spliced into one. */
		struct txtop_record *old = tracks.lookup(&skb);
		if (old) {
			u8 how = END_LOST;
			if (old->flags & F_PARKED) {
				how = old->end;
			} else if (old->ts[ST_XMIT]) {
				old->flags |= F_HANDED_ON;
				how = END_COMPLETE;
			}
			if (!end_track(old, how, P_DEV_QUEUE)) {
				/* Parked and refused again: the new track takes its place. */
				track_gone(skb, how);
				stat_inc(S_RB_FULL + P_DEV_QUEUE);
			}
		}
	}
	u32 tid = (u32)bpf_get_current_pid_tgid();
	int tied = pc->sys_tid == tid && tid != 0 && !pc->sys_claimed &&
		   pc->sys_gen == c->generation;
	if (tied)
		pc->sys_claimed = 1; /* only the syscall's first dev_queue is its packet */
#ifdef TXTOP_BTF
	if (c->filter_pid && !tied && !owner_in_pid_filter(skb))
		return 0;
	/* The flow filter needs the headers of every packet, before the pick; without it only
	 * sampled packets pay for reading them, after it. (One read_flow call site: it is big.) */
	struct txtop_flow f = {};
	int filtered = c->filter_flow;
	if (!filtered && !picked(c, pc, &now))
		return 0;
	int have_flow = read_flow(skb, &f);
	if (filtered) {
		if (!have_flow || !flow_matches(&f)) {
			stat_inc(S_FLOW_FILTERED);
			return 0;
		}
		if (!picked(c, pc, &now))
			return 0;
	}
#else
	if (c->filter_pid && !tied)
		return 0;
	if (!picked(c, pc, &now))
		return 0;
#endif

	u32 zero = 0;
	struct txtop_record *t = scratch.lookup(&zero);
	if (!t)
		return 0;
	__builtin_memset(t, 0, sizeof(*t));
	t->skbaddr = skb;
	t->first_ns = now;
	t->len = len;
	t->sample_every = c->sample_every;
	t->sample_max_per_s = c->max_per_s;
	if (dev)
		__builtin_memcpy(t->dev, dev, IFNAMSIZ);
	set_stage(t, ST_DEV_QUEUE, now);
#ifdef TXTOP_BTF
	if (have_flow) {
		__builtin_memcpy(t->saddr, f.saddr, 16);
		__builtin_memcpy(t->daddr, f.daddr, 16);
		t->sport = f.sport;
		t->dport = f.dport;
		t->vlan = f.vlan;
		t->l3_proto = f.l3_proto;
		t->l4_proto = f.l4_proto;
		t->tcp_flags = f.tcp_flags;
		t->flow_flags = f.flags;
	} else {
		stat_inc(S_NO_FLOW);
	}
	u16 qmap = 0;
	if (KREAD(qmap, skb, SK_BUFF_QUEUE_MAPPING) == 0) {
		t->queue = qmap;
		t->flags |= F_QMAP;
	}
	if (!len)
		KREAD(t->len, skb, SK_BUFF_LEN); /* the raw form: a packet dropped before the
						  * driver still has its length */
	u64 netdev = 0;
	if (!t->ifindex && KREAD(netdev, skb, SK_BUFF_DEV) == 0 && netdev) {
		KREAD(t->ifindex, netdev, NET_DEVICE_IFINDEX);
		t->netns = dev_netns(netdev);
	}
	/* The owner: the syscall tie when there is one, else whoever last sent on skb->sk. (A
	 * tie wins over the map: the map may still hold the previous owner of a reused socket
	 * address until the new owner's first send is noted.) */
	u64 sk = skb_sock(skb);
	struct txtop_owner *o = sk ? owners.lookup(&sk) : 0;
#endif
	if (tied) {
		u64 id = bpf_get_current_pid_tgid();
		t->tgid = id >> 32;
		t->tid = (u32)id;
		t->via = VIA_SYSCALL;
		t->cgroup_id = bpf_get_current_cgroup_id();
		t->owner_ns = pc->sys_enter_ns ? pc->sys_enter_ns : now;
		bpf_get_current_comm(&t->comm, sizeof(t->comm));
		t->ts[ST_SENDTO] = pc->sys_enter_ns;
		if (pc->sys_enter_ns)
			t->cpu[ST_SENDTO] = t->cpu[ST_DEV_QUEUE];
		t->syscall = pc->sys_nr;
		if (!(t->flow_flags & FL_PORTS))
			t->dport = sender_dport(pc->sys_nr, sys_user_addr(pc));
#ifdef TXTOP_BTF
		if (sk && !o)
			note_owner(sk); /* learnt here too: the first send on a socket precedes its
					 * sock_send_length, and a kernel without it has only this */
#endif
	}
#ifdef TXTOP_BTF
	else if (o) {
		t->tgid = o->tgid;
		t->tid = o->tid;
		t->cgroup_id = o->cgroup_id;
		t->owner_ns = o->ns;
		__builtin_memcpy(t->comm, o->comm, TASK_COMM_LEN);
		t->via = VIA_SOCKET;
	} else {
		t->via = VIA_KERNEL; /* no socket, or one nobody was seen sending on */
	}
#endif
	/* Counted in the bloom before the insert: a probe on another CPU must never find the
	 * track in the map with its slot still empty. */
	track_bloom_add(skb, 1);
	if (tracks.update(&skb, t) != 0) {
		track_bloom_add(skb, -1);
		stat_inc(S_TRACK_FULL);
		return 0;
	}
	gate_add(1);
	stat_inc(S_SAMPLED);
	if (tied) {
		struct txtop_pending p = {.skbaddr = skb, .first_ns = now};
		pending_bloom_add(tid, 1);
		if (sys_pending.insert(&tid, &p) == 0) {
			gate_add(1);
		} else { /* a stale entry of a syscall whose return we missed: replace, still
			  * counted (once in the bloom) */
			pending_bloom_add(tid, -1);
			sys_pending.update(&tid, &p);
		}
	}
	return 0;
}

#ifdef TXTOP_HAVE_DEV_QUEUE
#ifndef TXTOP_BTF
/* Classic form: carries the device name, so an interface filter can act first. (With BTF
 * offsets the raw form reads skb->dev->ifindex itself: only it is compiled, which also keeps
 * the program small.) */
TRACEPOINT_PROBE(net, net_dev_queue)
{
	struct txtop_config *c = get_config();
	struct txtop_devname dev = {};
	if (!c)
		return 0;
	TP_DATA_LOC_READ_STR(dev.name, name, IFNAMSIZ);
	if (c->filter_dev && !dev_filter.lookup(&dev))
		return 0;
	return on_dev_queue((u64)args->skbaddr, dev.name, args->len);
}

#endif

/* Raw form: TP_PROTO(struct sk_buff *skb); the pointer is our key. Filters by interface only
 * with BTF offsets (skb->dev->ifindex), else the classic form does that. */
int txtop_raw_dev_queue(struct bpf_raw_tracepoint_args *ctx)
{
	u64 skb = ctx->args[0];
#ifdef TXTOP_BTF
	struct txtop_config *c = get_config();
	struct txtop_cpu *pc = get_cpu_state();
	if (c && pc && c->filter_dev) {
		u64 dev = 0;
		if (KREAD(dev, skb, SK_BUFF_DEV) != 0)
			return 0;
		struct txtop_devcache *d = dev_info(c, pc, dev);
		if (!d || !d->pass)
			return 0;
	}
#endif
	return on_dev_queue(skb, 0, 0);
}
#endif

/* ---- qdisc ------------------------------------------------------------------------------- */

static __always_inline void on_qdisc_enqueue(struct txtop_config *c, u64 skb, s32 ifindex, u64 now)
{
	struct txtop_record *t = track_of(c, skb, now, P_QDISC_ENQUEUE);
	if (!t)
		return;
	if (!t->ts[ST_QDISC_ENQUEUE]) /* the first enqueue: a requeue is not a new wait */
		set_stage(t, ST_QDISC_ENQUEUE, now);
	t->ifindex = ifindex;
}

static __always_inline void on_qdisc_dequeue(struct txtop_config *c, u64 skb, s32 ifindex,
					     u64 txq_state, u64 now)
{
	struct txtop_record *t = track_of(c, skb, now, P_QDISC_DEQUEUE);
	if (!t)
		return;
	set_stage(t, ST_QDISC_DEQUEUE, now); /* the last dequeue: after a requeue it counts */
	t->txq_state = txq_state;
	t->ifindex = ifindex;
	t->flags |= F_TXQ_STATE;
}

static __always_inline void count_stopped(struct txtop_skey *k)
{
	u64 one = 1, *v = txq_stopped.lookup(k);
	if (v)
		(*v)++;
	else if (txq_stopped.update(k, &one) != 0)
		stat_inc(S_COUNTER_FULL);
}

#ifdef TXTOP_BTF
/* Raw qdisc:qdisc_enqueue, TP_PROTO(struct Qdisc *qdisc, const struct netdev_queue *txq,
 * struct sk_buff *skb). Only a tracked skb matters here (its track passed the interface
 * filter at net_dev_queue), so an untracked one costs the bloom check alone. */
#ifdef TXTOP_HAVE_QDISC_ENQUEUE
int txtop_raw_qdisc_enqueue(struct bpf_raw_tracepoint_args *ctx)
{
	u64 skb = ctx->args[2];
	struct txtop_config *c = get_config();
	if (!c || !tracks_live(c) || !track_maybe(skb))
		return 0;
	u64 dev = 0;
	s32 ifindex = 0;
	if (KREAD(dev, ctx->args[1], NETDEV_QUEUE_DEV) == 0 && dev)
		KREAD(ifindex, dev, NET_DEVICE_IFINDEX);
	on_qdisc_enqueue(c, skb, ifindex, bpf_ktime_get_ns());
	return 0;
}
#endif

/* Raw qdisc:qdisc_dequeue, TP_PROTO(struct Qdisc *qdisc, const struct netdev_queue *txq,
 * int packets, struct sk_buff *skb): txq->state is read for every dequeue (the stopped-queue
 * count), the rest only when the queue was stopped or the skb is tracked. */
#ifdef TXTOP_HAVE_QDISC_DEQUEUE
int txtop_raw_qdisc_dequeue(struct bpf_raw_tracepoint_args *ctx)
{
	u64 txq = ctx->args[1], skb = ctx->args[3];
	struct txtop_config *c = get_config();
	if (!c || !txq)
		return 0;
	u64 state = 0;
	KREAD(state, txq, NETDEV_QUEUE_STATE);
	int tracked = skb && tracks_live(c) && track_maybe(skb);
	if (!(state & TXQ_XOFF_MASK) && !tracked)
		return 0;
	u64 dev = 0;
	struct txtop_skey k = {};
	if (KREAD(dev, txq, NETDEV_QUEUE_DEV) == 0 && dev) {
		KREAD(k.ifindex, dev, NET_DEVICE_IFINDEX);
		if (state & TXQ_XOFF_MASK)
			k.netns = dev_netns(dev);
	}
	if (state & TXQ_XOFF_MASK) {
		KREAD(k.parent, ctx->args[0], QDISC_PARENT);
		count_stopped(&k);
	}
	if (tracked)
		on_qdisc_dequeue(c, skb, k.ifindex, state, bpf_ktime_get_ns());
	return 0;
}
#endif

#else /* no BTF offsets: the classic forms, whose records carry the fields */

static __always_inline int dev_filtered_out(struct txtop_config *c, s32 ifindex)
{
	struct txtop_devkey k = {.ifindex = ifindex};
	return c->filter_dev && !ifindex_filter.lookup(&k);
}

#ifdef TXTOP_HAVE_QDISC_ENQUEUE
TRACEPOINT_PROBE(qdisc, qdisc_enqueue)
{
	struct txtop_config *c = get_config();
	if (!c || dev_filtered_out(c, args->ifindex) || !tracks_live(c))
		return 0;
	on_qdisc_enqueue(c, (u64)args->skbaddr, args->ifindex, bpf_ktime_get_ns());
	return 0;
}
#endif

#ifdef TXTOP_HAVE_QDISC_DEQUEUE
TRACEPOINT_PROBE(qdisc, qdisc_dequeue)
{
	struct txtop_config *c = get_config();
	if (!c || dev_filtered_out(c, args->ifindex))
		return 0;
	if (args->txq_state & TXQ_XOFF_MASK) {
		struct txtop_skey k = {.ifindex = args->ifindex, .parent = args->parent};
		count_stopped(&k);
	}
	if (!tracks_live(c))
		return 0;
	on_qdisc_dequeue(c, (u64)args->skbaddr, args->ifindex, args->txq_state,
			 bpf_ktime_get_ns());
	return 0;
}
#endif
#endif /* TXTOP_BTF */

/* ---- the driver ------------------------------------------------------------------------- */

static __always_inline void count_queue(struct txtop_qkey *k, u32 len, u32 segs)
{
	struct txtop_qval *v = txq_stats.lookup(k);
	if (v) {
		v->packets++;
		v->bytes += len;
		v->gso_segs += segs;
	} else {
		struct txtop_qval first = {.packets = 1, .bytes = len, .gso_segs = segs};
		if (txq_stats.update(k, &first) != 0)
			stat_inc(S_COUNTER_FULL);
	}
}

#ifdef TXTOP_HAVE_START_XMIT
#ifdef TXTOP_BTF
/* skb->len and skb->queue_mapping, in one read where they sit close together (they do:
 * 12 bytes apart on 6.x), else two. */
static __always_inline void read_len_queue(u64 skb, u32 *len, u16 *queue)
{
#if TXTOP_OFF_SK_BUFF_QUEUE_MAPPING > TXTOP_OFF_SK_BUFF_LEN && \
	TXTOP_OFF_SK_BUFF_QUEUE_MAPPING - TXTOP_OFF_SK_BUFF_LEN <= 30
#define LEN_TO_QUEUE (TXTOP_OFF_SK_BUFF_QUEUE_MAPPING - TXTOP_OFF_SK_BUFF_LEN)
	u8 b[LEN_TO_QUEUE + 2];
	if (bpf_probe_read_kernel(b, sizeof(b), (void *)skb + TXTOP_OFF_SK_BUFF_LEN) != 0)
		return;
	__builtin_memcpy(len, b, 4);
	__builtin_memcpy(queue, b + LEN_TO_QUEUE, 2);
#else
	KREAD(*len, skb, SK_BUFF_LEN);
	KREAD(*queue, skb, SK_BUFF_QUEUE_MAPPING);
#endif
}

/* skb_shinfo(skb): head + end (end is an offset from head on 64-bit kernels, where the two
 * sit side by side and are read at once), or end itself where it is a pointer. 0 if unread. */
static __always_inline u64 skb_shinfo(u64 skb)
{
#if TXTOP_SIZE_SK_BUFF_END == 8
	u64 end = 0;
	KREAD(end, skb, SK_BUFF_END);
	return end;
#elif TXTOP_OFF_SK_BUFF_HEAD == TXTOP_OFF_SK_BUFF_END + 4
	struct {
		u32 end;
		u64 head;
	} __attribute__((packed)) eh = {};
	if (bpf_probe_read_kernel(&eh, sizeof(eh), (void *)skb + TXTOP_OFF_SK_BUFF_END) != 0 ||
	    !eh.head)
		return 0;
	return eh.head + eh.end;
#else
	u32 end = 0;
	u64 head = 0;
	if (KREAD(end, skb, SK_BUFF_END) != 0 || KREAD(head, skb, SK_BUFF_HEAD) != 0 || !head)
		return 0;
	return head + end;
#endif
}

/* Raw net:net_dev_start_xmit, TP_PROTO(const struct sk_buff *skb, const struct net_device
 * *dev): every packet on every device is counted per (namespace, ifindex, queue); the device's
 * name is read only for a tracked skb. gso_segs lives in skb_shared_info at head + end. */
int txtop_raw_start_xmit(struct bpf_raw_tracepoint_args *ctx)
{
	u64 skb = ctx->args[0], dev = ctx->args[1];
	struct txtop_config *c = get_config();
	struct txtop_cpu *pc = get_cpu_state();
	if (!c || !pc)
		return 0;
	stat_inc(S_XMIT_PACKETS); /* before the filter: every run costs, filtered or not */
	struct txtop_devcache *d = dev_info(c, pc, dev);
	if (!d || !d->pass)
		return 0;
	u16 queue = 0, segs = 0;
	u32 len = 0;
	read_len_queue(skb, &len, &queue);
	u64 shinfo = skb_shinfo(skb);
	if (shinfo)
		KREAD(segs, shinfo, SKB_SHARED_INFO_GSO_SEGS);
	u32 idx = d->slot * SLOT_QUEUES + queue;
	struct txtop_qval *v = 0;
	if (d->slot < SLOTS && queue < SLOT_QUEUES)
		v = txq_counts.lookup(&idx);
	if (v) { /* per CPU: plain adds */
		v->packets++;
		v->bytes += len;
		v->gso_segs += segs ? segs : 1;
	} else {
		struct txtop_qkey k = {.dev = d->key, .queue = queue};
		count_queue(&k, len, segs ? segs : 1);
	}
	/* net_dev_xmit follows on this CPU (xmit_one): it learns the queue from here. */
	pc->sx_skb = skb;
	pc->sx_key = d->key;
	pc->sx_queue = queue;
	if (!tracks_live(c) || !track_maybe(skb))
		return 0;
	u64 now = bpf_ktime_get_ns();
	struct txtop_record *t = track_of(c, skb, now, P_START_XMIT);
	if (!t)
		return 0;
	set_stage(t, ST_START_XMIT, now);
	bpf_probe_read_kernel(t->dev, IFNAMSIZ, (void *)dev + TXTOP_OFF_NET_DEVICE_NAME);
	t->ifindex = d->key.ifindex; /* the device it left on (a stacked one hands it on) */
	t->netns = d->key.netns;
	u16 proto_be = 0;
	KREAD(proto_be, skb, SK_BUFF_PROTOCOL);
	t->queue = queue;
	t->len = len;
	t->gso_segs = segs;
	t->protocol = be16(proto_be);
	t->flags |= F_QUEUE;
	return 0;
}
#else
TRACEPOINT_PROBE(net, net_dev_start_xmit)
{
	struct txtop_config *c = get_config();
	struct txtop_cpu *pc = get_cpu_state();
	struct txtop_qkey k = {};
	if (!c || !pc)
		return 0;
	stat_inc(S_XMIT_PACKETS); /* before the filter: every run costs, filtered or not */
	TP_DATA_LOC_READ_STR(k.dev, name, IFNAMSIZ);
	if (c->filter_dev && !dev_filter.lookup((struct txtop_devname *)&k.dev))
		return 0;
	k.queue = args->queue_mapping;
	count_queue(&k, args->len, args->gso_segs ? args->gso_segs : 1);
	/* net_dev_xmit follows on this CPU (xmit_one): it learns the queue from here. */
	pc->sx_skb = (u64)args->skbaddr;
	__builtin_memcpy(pc->sx_dev, k.dev, IFNAMSIZ);
	pc->sx_queue = k.queue;
	if (!tracks_live(c))
		return 0;
	u64 now = bpf_ktime_get_ns();
	struct txtop_record *t = track_of(c, (u64)args->skbaddr, now, P_START_XMIT);
	if (!t)
		return 0;
	set_stage(t, ST_START_XMIT, now);
	__builtin_memcpy(t->dev, k.dev, IFNAMSIZ);
	t->queue = args->queue_mapping;
	t->len = args->len;
	t->gso_segs = args->gso_segs;
	t->protocol = args->protocol;
	t->flags |= F_QUEUE;
	return 0;
}
#endif
#endif

#ifdef TXTOP_HAVE_XMIT
/* Raw net_dev_xmit: TP_PROTO(struct sk_buff *skb, int rc, struct net_device *dev,
 * unsigned int skb_len); the skb may already be gone, so its address is only a key. */
int txtop_raw_xmit(struct bpf_raw_tracepoint_args *ctx)
{
	u64 skb = ctx->args[0];
	s32 rc = (s32)ctx->args[1];
	struct txtop_config *c = get_config();
	if (!c)
		return 0;
	if (rc != 0) {
		struct txtop_cpu *pc = get_cpu_state();
		if (pc && pc->sx_skb == skb) {
			struct txtop_ekey k = {.queue = pc->sx_queue, .rc = rc};
#ifdef TXTOP_BTF
			k.dev = pc->sx_key;
#else
			__builtin_memcpy(k.dev, pc->sx_dev, IFNAMSIZ);
#endif
			u64 one = 1, *v = xmit_errors.lookup(&k);
			if (v)
				(*v)++;
			else if (xmit_errors.update(&k, &one) != 0)
				stat_inc(S_COUNTER_FULL);
		}
	}
	if (!tracks_live(c) || !track_maybe(skb))
		return 0;
	u64 now = bpf_ktime_get_ns();
	struct txtop_record *t = track_of(c, skb, now, P_XMIT);
	if (!t)
		return 0;
	set_stage(t, ST_XMIT, now);
	t->xmit_rc = rc;
	t->flags |= F_RC;
	if (rc == 0 && !tx_completion.lookup((struct txtop_devname *)t->dev))
		end_track(t, END_COMPLETE, P_XMIT);
	return 0;
}
#endif

/* ---- the end of an skb ------------------------------------------------------------------ */

static __always_inline void on_free(u64 skb, u64 location, u32 reason, u8 kind, u32 probe)
{
	struct txtop_config *c = get_config();
	if (!c || !tracks_live(c) || !track_maybe(skb))
		return;
	u64 now = bpf_ktime_get_ns();
	struct txtop_record *t = track_of(c, skb, now, probe);
	if (!t)
		return;
	set_stage(t, ST_FREE, now);
	t->location = location;
	t->free_kind = kind;
	if (kind == FREE_DROP) {
		t->drop_reason = reason;
		t->flags |= F_REASON;
	}
	/* Ended at once: the address may be reused by the next allocation. */
	end_track(t, END_COMPLETE, probe);
}

#ifdef TXTOP_HAVE_CONSUME_SKB
/* Raw consume_skb: TP_PROTO(struct sk_buff *skb, void *location) (location since 6.3). */
int txtop_raw_consume_skb(struct bpf_raw_tracepoint_args *ctx)
{
#ifdef TXTOP_CONSUME_LOCATION
	on_free(ctx->args[0], ctx->args[1], 0, FREE_CONSUME, P_CONSUME_SKB);
#else
	on_free(ctx->args[0], 0, 0, FREE_CONSUME, P_CONSUME_SKB);
#endif
	return 0;
}
#endif

#ifdef TXTOP_HAVE_KFREE_SKB
/* Raw kfree_skb: TP_PROTO(struct sk_buff *skb, void *location, enum skb_drop_reason reason,
 * ...) since 5.17 (tracer.py checks the format file has "reason"), (skb, location) before. */
int txtop_raw_kfree_skb(struct bpf_raw_tracepoint_args *ctx)
{
#ifdef TXTOP_KFREE_REASON
	on_free(ctx->args[0], ctx->args[1], (u32)ctx->args[2], FREE_DROP, P_KFREE_SKB);
#else
	on_free(ctx->args[0], ctx->args[1], 0, FREE_DROP, P_KFREE_SKB);
#endif
	return 0;
}
#endif

/* ---- BQL ----------------------------------------------------------------------------------- */

#ifdef TXTOP_HAVE_DQL_STALL
/* Raw napi:dql_stall_detected: no argument is used. */
int txtop_raw_dql_stall(struct bpf_raw_tracepoint_args *ctx)
{
	stat_inc(S_DQL_STALL);
	return 0;
}
#endif

/* ---- softirqs: raw irq:softirq_entry/exit with TP_PROTO(unsigned int vec_nr) ----------------
 * Runs are counted exactly (auto duty's softirq rate). Raises are not traced: nothing used
 * them, and on veth irq:softirq_raise fires once per packet. The time is measured on one run
 * in SOFTIRQ_TIME_EVERY, which then counts for that many runs: two clock reads per run are
 * most of these probes' cost when a softirq runs per packet, and the sum stays a monotonic,
 * unbiased estimate. */
#define SOFTIRQ_TIME_EVERY 8
#define SOFTIRQ_MAX_RUN_NS 100000000ULL /* net_rx_action stops after 2 ms (netdev_budget_usecs) */

#ifdef TXTOP_HAVE_SOFTIRQ
static __always_inline struct txtop_softirq *net_softirq(u64 vec, u32 *i)
{
	u32 zero = 0;
	if (vec != NET_TX_SOFTIRQ && vec != NET_RX_SOFTIRQ)
		return 0;
	*i = vec == NET_TX_SOFTIRQ ? 0 : 1;
	return softirq.lookup(&zero);
}

int txtop_raw_softirq_entry(struct bpf_raw_tracepoint_args *ctx)
{
	u32 i = 0;
	struct txtop_softirq *s = net_softirq(ctx->args[0], &i);
	if (s && i < 2) {
		u64 n = ++s->runs[i];
		if (n % SOFTIRQ_TIME_EVERY == 0)
			s->entry_ns[i] = bpf_ktime_get_ns();
	}
	return 0;
}

int txtop_raw_softirq_exit(struct bpf_raw_tracepoint_args *ctx)
{
	u32 i = 0;
	struct txtop_softirq *s = net_softirq(ctx->args[0], &i);
	if (s && i < 2 && s->entry_ns[i]) {
		u64 d = bpf_ktime_get_ns() - s->entry_ns[i];
		/* An entry from an earlier trace window whose exit was not seen (the exit probe is
		 * detached between windows) is far older than any softirq run: drop it. */
		if (d < SOFTIRQ_MAX_RUN_NS)
			s->ns[i] += d * SOFTIRQ_TIME_EVERY;
		s->entry_ns[i] = 0;
	}
	return 0;
}
#endif
