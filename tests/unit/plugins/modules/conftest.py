# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

from .utils import module_harness  # noqa: F401  pylint: disable=unused-import

__metaclass__ = type
