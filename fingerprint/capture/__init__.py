"""Packets from capture files and live sniffing, in one lightweight record type.

`packet.Packet` is what the rest of the pipeline sees; `reader` streams pcap,
pcapng and gzip files into it without scapy's (slow) full dissection.
"""
