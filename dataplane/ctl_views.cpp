#include "dataplane/ctl_service.hpp"

namespace vanish::dp {

bool handle_views(ControlContext&, const ctl::v1::Request&, ctl::v1::Response*) {
  return false;  // no command of this group is served yet
}

}  // namespace vanish::dp
