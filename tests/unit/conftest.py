# -*- coding: utf-8 -*-
"""Make ansible_collections.gpulab.cluster importable from a plain checkout.

collections/ansible_collections/gpulab/cluster is a link to the repository root, so the
collection's Python code is imported under its real name, as Ansible imports it.
"""
from __future__ import absolute_import, division, print_function

import os
import sys

__metaclass__ = type

_COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "collections"))
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
