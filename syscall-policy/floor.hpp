// Stacking a user's policy on the admin's floor: the user may add restrictions,
// never lift them.
//
// Restrictiveness, from least to most restrictive:
//
//     allow < log < virtualize < deny (any errno) < kill
//
// log runs the real call (and records it), virtualize never does (the
// supervisor answers with a deterministic value), so turning a virtualized call
// into a logged one would defeat determinism; a denial of a virtualized call is
// fine. Denials with different errnos are equally restrictive. The i386 action
// and the default action are ranked the same way.
//
// The effective policy decides every call as the more restrictive of the two
// policies (on a tie the floor's form stays, e.g. its errno):
//  * per syscall, the table verdict is the stricter of the floor's (its rule or
//    its default) and the user's (the user's last unconditional rule for it, or
//    the user's default if the user set one);
//  * the floor's conditional rules all stay; the user's are added;
//  * the default and the i386 action are the stricter of the two.
// A user policy that does not set a default has no opinion on the syscalls it
// doesn't name.
//
// Refused with PolicyError naming the user's rule (file:line) and the floor's
// (its origin): a user rule whose verdict for some syscall is less restrictive
// than the floor's verdict for it (an unconditional rule against the floor's
// table verdict; a conditional one likewise), a user default below the floor's
// default, a user i386 action below the floor's.
#pragma once

#include "syscall-policy/policy.hpp"

namespace hermetic::policy {

// 0 (allow) .. 4 (kill), as above.
int restrictiveness(const Action& a);

// The effective policy of `user` stacked on `floor` (see above). Its rules are
// the floor's followed by one rule per syscall the user makes stricter, each
// with the user rule's origin. Throws PolicyError for a refused user rule, or
// when the result can't be compiled (e.g. a user conditional rule overlapping
// a floor conditional rule with another action; both origins are named).
Policy stack(const Policy& floor, const Policy& user);

}  // namespace hermetic::policy
