using PeftSharp.Models;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>KV-cache decoding and padded batches give the same numbers as plain full forwards.</summary>
public class DecodingTests
{
    [Theory]
    [InlineData("bases/llama")]
    [InlineData("bases/llama-tied-rope-scaling")]
    [InlineData("bases/qwen2")]
    [InlineData("bases/gpt2")]
    public void Prefill_then_token_by_token_with_cache_equals_full_forward_within_1e5(string folder)
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture(folder));
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var full = model.Forward(ids, mask).Logits;

        using var cache = model.CreateCache();
        const int Prefill = 5;
        var pieces = new List<Tensor> { model.Forward(ids.narrow(1, 0, Prefill), mask.narrow(1, 0, Prefill), cache: cache).Logits };
        for (var t = Prefill; t < ids.shape[1]; t++)
        {
            // The mask covers cached + new positions, as transformers' generate passes it.
            pieces.Add(model.Forward(ids.narrow(1, t, 1), mask.narrow(1, 0, t + 1), cache: cache).Logits);
            Assert.Equal(t + 1, cache.Length);
        }
        var incremental = torch.cat(pieces, 1);
        Assert.InRange(ModelFixtures.MaxAbsDiff(incremental, full), 0, 1e-5);
    }

    [Theory]
    [InlineData("bases/llama")]
    [InlineData("bases/gpt2")]
    public void Left_padded_batch_equals_each_row_run_alone_within_1e5(string folder)
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture(folder));
        var (ids, _, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        // Row 0: 12 real tokens. Row 1: its first 7 tokens, left-padded by 5 with pad id 0.
        const int Pad = 5;
        var shortRow = ids[1].narrow(0, 0, 12 - Pad);
        var batch = torch.stack([ids[0], torch.cat([torch.zeros(Pad, dtype: ScalarType.Int64), shortRow])]);
        var mask = torch.stack([torch.ones(12, dtype: ScalarType.Int64), torch.cat([torch.zeros(Pad, dtype: ScalarType.Int64), torch.ones(12 - Pad, dtype: ScalarType.Int64)])]);
        var positions = AttentionMasks.PositionIdsFromMask(mask);
        var batched = model.Forward(batch, mask, positionIds: positions).Logits;
        Assert.False(batched.isnan().any().item<bool>(), "a fully masked pad query must not produce NaN");

        var alone0 = model.Forward(ids[0].unsqueeze(0)).Logits[0];
        var alone1 = model.Forward(shortRow.unsqueeze(0)).Logits[0];
        Assert.InRange(ModelFixtures.MaxAbsDiff(batched[0], alone0), 0, 1e-5);
        Assert.InRange(ModelFixtures.MaxAbsDiff(batched[1].narrow(0, Pad, 12 - Pad), alone1), 0, 1e-5);
    }

    [Fact]
    public void Left_padded_generation_with_cache_matches_row_alone_within_1e5()
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases/llama"));
        var (ids, _, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        const int Pad = 4;
        var shortRow = ids[1].narrow(0, 0, 12 - Pad);
        var batch = torch.stack([ids[0], torch.cat([torch.zeros(Pad, dtype: ScalarType.Int64), shortRow])]);
        var mask = torch.stack([torch.ones(12, dtype: ScalarType.Int64), torch.cat([torch.zeros(Pad, dtype: ScalarType.Int64), torch.ones(12 - Pad, dtype: ScalarType.Int64)])]);
        var positions = AttentionMasks.PositionIdsFromMask(mask);

        using var cache = model.CreateCache();
        const int Prefill = 8;
        var pieces = new List<Tensor> { model.Forward(batch.narrow(1, 0, Prefill), mask.narrow(1, 0, Prefill), positionIds: positions.narrow(1, 0, Prefill), cache: cache).Logits };
        for (var t = Prefill; t < 12; t++)
        {
            pieces.Add(model.Forward(batch.narrow(1, t, 1), mask.narrow(1, 0, t + 1), positionIds: positions.narrow(1, t, 1), cache: cache).Logits);
        }
        var incremental = torch.cat(pieces, 1);
        var alone1 = model.Forward(shortRow.unsqueeze(0)).Logits[0];
        Assert.InRange(ModelFixtures.MaxAbsDiff(incremental[1].narrow(0, Pad, 12 - Pad), alone1), 0, 1e-5);
    }

    [Fact]
    public void Sequence_classifier_pools_last_real_token_with_left_or_right_padding()
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases/llama-seqcls"));
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        // Row 1 of inputs.json is right-padded by 3 (pad id 0 = pad_token_id); moving the padding to the left
        // (positions from the mask) must give the same row logits as the 9 real tokens alone.
        var real = ids[1].narrow(0, 0, 9);
        var alone = model.Forward(real.unsqueeze(0)).Logits[0];
        var right = model.Forward(ids, mask).Logits[1];
        var leftIds = torch.cat([torch.zeros(3, dtype: ScalarType.Int64), real]).unsqueeze(0);
        var leftMask = torch.cat([torch.zeros(3, dtype: ScalarType.Int64), torch.ones(9, dtype: ScalarType.Int64)]).unsqueeze(0);
        var left = model.Forward(leftIds, leftMask, positionIds: AttentionMasks.PositionIdsFromMask(leftMask)).Logits[0];
        Assert.InRange(ModelFixtures.MaxAbsDiff(right, alone), 0, 1e-5);
        Assert.InRange(ModelFixtures.MaxAbsDiff(left, alone), 0, 1e-5);
    }

    [Fact]
    public void Gpt2_sequence_classifier_scores_the_last_real_token()
    {
        // GPT2ForSequenceClassification over the GPT2LMHeadModel fixture: a new score head (reported), the tied
        // lm_head absent; logits must be score(h[b, last non-pad]) computed by hand from the hidden state.
        var options = new ModelLoadOptions { Architecture = "GPT2ForSequenceClassification", NumLabels = 3, AllowNewHead = true };
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "gpt2"), options);
        Assert.Equal(["score.weight"], model.LoadReport!.NewlyInitialized);
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var result = model.Forward(ids, mask);
        Assert.Equal([2L, 3L], result.Logits.shape);
        var weight = model.named_parameters().Single(p => p.name == "score.weight").parameter;
        var hidden = result.LastHiddenState!;
        // Row 0 has no pad: last position 11. Row 1 is right-padded from position 9: pooled at 8.
        var expected = torch.stack([hidden[0, 11], hidden[1, 8]]).matmul(weight.t());
        Assert.InRange(ModelFixtures.MaxAbsDiff(result.Logits, expected), 0, 1e-6);
    }

    [Fact]
    public void Cache_keeps_gradients_of_the_new_positions()
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"));
        using var scope = torch.NewDisposeScope();
        using var cache = model.CreateCache();
        var ids = torch.tensor(new long[] { 1, 5, 7 }).unsqueeze(0);
        using (torch.no_grad())
        {
            model.Forward(ids, cache: cache);
        }
        var loss = model.Forward(ids.narrow(1, 0, 1), cache: cache).Logits.sum();
        loss.backward();
        var grad = model.named_parameters().Single(p => p.name == "model.layers.0.self_attn.k_proj.weight").parameter.grad;
        Assert.NotNull(grad);
        Assert.True(grad!.abs().sum().item<float>() > 0);
    }
}
