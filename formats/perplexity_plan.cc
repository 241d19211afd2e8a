#include "formats/perplexity_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace qatk {

absl::StatusOr<PerplexityPlan> PlanPerplexity(int64_t n_tokens, int64_t ctx, bool replace_bos, int32_t bos,
                                              int64_t max_chunks) {
  if (ctx < 4) return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, " must be >= 4"));
  if (n_tokens < 2 * ctx) {
    return absl::InvalidArgumentError(
        absl::StrCat("need at least 2*ctx = ", 2 * ctx, " tokens, the text has ", n_tokens));
  }
  PerplexityPlan p;
  p.ctx = ctx;
  p.chunks = n_tokens / ctx;
  if (max_chunks > 0) p.chunks = std::min(p.chunks, max_chunks);
  p.replace_bos = replace_bos;
  p.bos = bos;
  return p;
}

}  // namespace qatk
