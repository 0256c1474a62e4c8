// Package sim is the discrete-event simulator of a Sotto network behind
// docs/ANALYSIS.md. It runs clients, providers and stratified mix layers in
// simulated time, single-threaded and seeded (math/rand/v2 PCG), so a seed
// reproduces a run exactly, and it measures what a global passive
// adversary learns: the Shannon entropy of a target message's sender
// distribution, a mix's output entropy, latency per hop and end to end, and
// the bandwidth spent on cover traffic.
//
// It reuses the protocol's pure pieces so that it measures what the code
// does: a real, signed pkidoc.Document is built for the simulated nodes and
// core/topology reads it (layers, path choice, mix loops, providers);
// core/cover draws the Loopix send schedule; core/mix draws every per-hop
// delay, capped and cut to milliseconds as the client does (client/pki.go).
//
// What is simulated (docs/SPEC.md, "Nodes" and "Client messages"): a client
// sends on merged Poisson streams λP + λL + λD through its gateway provider,
// one mix per layer and a destination provider; every hop but the last holds
// the packet for an Exp(μ) delay; a payload slot carries the next fragment
// of a queued message or, when none is queued, a drop decoy; loops return to
// the client's own provider; a destination provider answers every forward
// fragment and loop with an ACK through its SURB (layer 0 .. L-1, then the
// sender's provider); each mix sends loops at λM along topology.MixLoop.
// Links are instantaneous and nodes never drop: the analysis is about
// mixing, not about losses.
//
// The adversary and the anonymity metric are defined in docs/ANALYSIS.md
// ("The adversary" and "Measuring sender anonymity"). In short: the
// adversary sees every link, knows where each packet's path starts and ends
// (not which kind of packet it is), and optionally runs a fraction of the
// mixes and providers, which reveal their input-output mapping. For an
// honest node, memorylessness makes each departure a uniform draw from the
// node's pool, which gives the exact posterior the simulator propagates
// (backwards from a delivered target fragment, through per-node event
// logs, to a distribution over clients).
package sim
