#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# ansible/ as its linters see it: yamllint (strict) and ansible-lint with
# the production profile (ansible/.yamllint, ansible/.ansible-lint).
set -eu
cd ansible
yamllint -s .
ansible-lint --offline -q
echo "ansible-lint: clean"
