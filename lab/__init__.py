"""The demo lab: network namespaces with a veth pair, its traffic generators, and the synthetic source."""
