using System.Text.Json.Nodes;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using PeftSharp.Models.Common;
using PeftSharp.Models.Llama;
using PeftSharp.Tests.IO;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>
/// Mistral's and Qwen2's sliding-window attention: a windowed layer's query at position i sees keys
/// i − W + 1 … i only (transformers' mask: key j hidden when j ≤ i − W). The reference for one layer is the model run
/// on the window alone: rotary attention depends only on relative positions, so the last W tokens fed as a sequence
/// of their own give the same output at their last position.
/// </summary>
public sealed class SlidingWindowTests
{
    private static TempDir Variant(string fixture, int layers, Action<JsonObject> edit)
    {
        var source = SharedPaths.Fixture("bases", fixture);
        var dir = new TempDir();
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
        config["num_hidden_layers"] = layers;
        edit(config);
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
        {
            foreach (var entry in file.Entries)
            {
                var keep = Enumerable.Range(layers, 8).All(i => !entry.Name.Contains($".layers.{i}.", StringComparison.Ordinal));
                if (keep)
                {
                    tensors[entry.Name] = file.Read(entry.Name);
                }
            }
        }
        SafetensorsWriter.Save(dir.File("model.safetensors"), tensors);
        return dir;
    }

    private static Tensor Ids() => ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json")).Ids;

    [Fact]
    public void One_windowed_layer_at_each_position_equals_the_model_run_on_that_window_alone_within_1e5()
    {
        const int Window = 4;
        using var dir = Variant("mistral", 1, c => c["sliding_window"] = Window);
        using var full = Variant("mistral", 1, c => c["sliding_window"] = null);
        using var model = AutoModel.FromPretrained(dir.Path);
        using var unwindowed = AutoModel.FromPretrained(full.Path);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var ids = Ids().narrow(0, 0, 1);
        var length = ids.shape[1];
        Assert.True(length >= 3 * Window, "the input must be several windows long");

        var logits = model.Forward(ids).Logits[0];
        var everything = unwindowed.Forward(ids).Logits[0];
        for (var i = 0; i < length; i++)
        {
            var start = Math.Max(0, i - Window + 1);
            var alone = model.Forward(ids.narrow(1, start, i - start + 1)).Logits[0, -1];
            Assert.InRange(ModelFixtures.MaxAbsDiff(logits[i], alone), 0, 1e-5);
            var windowMatters = ModelFixtures.MaxAbsDiff(logits[i], everything[i]);
            if (i < Window)
            {
                Assert.InRange(windowMatters, 0, 1e-5);
            }
            else
            {
                Assert.True(windowMatters > 1e-3, $"position {i}: the window changed the logits by only {windowMatters}");
            }
        }
    }

    [Fact]
    public void Cache_decoding_past_the_window_equals_the_full_windowed_forward_within_1e5()
    {
        using var dir = Variant("mistral", 2, c => c["sliding_window"] = 5);
        using var model = AutoModel.FromPretrained(dir.Path);
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var fullForward = model.Forward(ids, mask).Logits;

        using var cache = model.CreateCache();
        const int Prefill = 3;
        var pieces = new List<Tensor> { model.Forward(ids.narrow(1, 0, Prefill), mask.narrow(1, 0, Prefill), cache: cache).Logits };
        for (var t = Prefill; t < ids.shape[1]; t++)
        {
            pieces.Add(model.Forward(ids.narrow(1, t, 1), mask.narrow(1, 0, t + 1), cache: cache).Logits);
        }
        Assert.InRange(ModelFixtures.MaxAbsDiff(torch.cat(pieces, 1), fullForward), 0, 1e-5);
    }

    [Fact]
    public void Checkpointed_backward_with_a_window_equals_the_plain_backward_within_1e6()
    {
        using var dir = Variant("mistral", 2, c => c["sliding_window"] = 3);
        using var model = AutoModel.FromPretrained(dir.Path);
        model.train();
        var ids = Ids();
        var grads = new List<Dictionary<string, Tensor>>();
        var losses = new List<double>();
        foreach (var checkpoint in new[] { false, true })
        {
            model.GradientCheckpointing = checkpoint;
            model.zero_grad();
            using (var scope = torch.NewDisposeScope())
            {
                var logits = model.Forward(ids).Logits;
                var loss = nn.functional.cross_entropy(logits.narrow(1, 0, ids.shape[1] - 1).flatten(0, 1), ids.narrow(1, 1, ids.shape[1] - 1).flatten());
                loss.backward();
                losses.Add(loss.item<float>());
            }
            grads.Add(model.named_parameters().Where(p => p.parameter.grad is not null)
                .ToDictionary(p => p.name, p => p.parameter.grad!.clone().DetachFromDisposeScope()));
        }
        Assert.InRange(Math.Abs(losses[0] - losses[1]), 0, 1e-6);
        Assert.Equal(grads[0].Keys.Order(), grads[1].Keys.Order());
        Assert.All(grads[0], g => Assert.InRange(ModelFixtures.MaxAbsDiff(g.Value, grads[1][g.Key]), 0, 1e-6));
    }

    [Fact]
    public void Qwen2_windows_only_the_layers_from_max_window_layers_on()
    {
        static LlamaConfig Parse(Action<JsonObject> edit)
        {
            var raw = (JsonObject)JsonNode.Parse(File.ReadAllText(SharedPaths.Fixture("bases", "qwen2", "config.json")))!;
            raw["num_hidden_layers"] = 3;
            edit(raw);
            return LlamaConfig.From(ModelConfig.Parse(raw.ToJsonString(), "qwen2/config.json"), DecoderFamily.Qwen2);
        }

        var off = Parse(c => c["sliding_window"] = 4);
        Assert.Null(off.SlidingWindow);
        Assert.Equal([false, false, false], off.SlidingLayers);

        var fromOne = Parse(c => { c["use_sliding_window"] = true; c["sliding_window"] = 4; c["max_window_layers"] = 1; });
        Assert.Equal(4, fromOne.SlidingWindow);
        Assert.Equal([false, true, true], fromOne.SlidingLayers);

        var explicitTypes = Parse(c =>
        {
            c["use_sliding_window"] = true;
            c["sliding_window"] = 4;
            c["layer_types"] = new JsonArray("sliding_attention", "full_attention", "sliding_attention");
        });
        Assert.Equal([true, false, true], explicitTypes.SlidingLayers);

        var wrongLength = Assert.Throws<ConfigException>(() => Parse(c =>
        {
            c["use_sliding_window"] = true;
            c["layer_types"] = new JsonArray("full_attention");
        }));
        Assert.Contains("qwen2/config.json", wrongLength.Message);
        Assert.Contains("layer_types", wrongLength.Message);
        var unknown = Assert.Throws<ConfigException>(() => Parse(c =>
        {
            c["use_sliding_window"] = true;
            c["layer_types"] = new JsonArray("full_attention", "chunked_attention", "full_attention");
        }));
        Assert.Contains("layer_types[1]", unknown.Message);
    }

    [Fact]
    public void Qwen2_with_only_its_last_layer_windowed_differs_from_no_window_and_from_all_windowed()
    {
        const int Window = 3;
        using var last = Variant("qwen2", 2, c => { c["use_sliding_window"] = true; c["sliding_window"] = Window; c["max_window_layers"] = 1; });
        using var all = Variant("qwen2", 2, c => { c["use_sliding_window"] = true; c["sliding_window"] = Window; c["max_window_layers"] = 0; });
        using var none = Variant("qwen2", 2, c => c["use_sliding_window"] = false);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var ids = Ids();
        Tensor Logits(TempDir d)
        {
            using var m = AutoModel.FromPretrained(d.Path);
            return m.Forward(ids).Logits;
        }
        var (lastOnly, allLayers, noWindow) = (Logits(last), Logits(all), Logits(none));

        // Within the first window nothing is hidden; after it, each configuration hides something the others do not.
        Assert.InRange(ModelFixtures.MaxAbsDiff(lastOnly.narrow(1, 0, Window), noWindow.narrow(1, 0, Window)), 0, 1e-5);
        Assert.InRange(ModelFixtures.MaxAbsDiff(lastOnly.narrow(1, 0, Window), allLayers.narrow(1, 0, Window)), 0, 1e-5);
        var later = ids.shape[1] - Window;
        Assert.True(ModelFixtures.MaxAbsDiff(lastOnly.narrow(1, Window, later), noWindow.narrow(1, Window, later)) > 1e-3);
        Assert.True(ModelFixtures.MaxAbsDiff(lastOnly.narrow(1, Window, later), allLayers.narrow(1, Window, later)) > 1e-3);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    public void A_window_below_one_position_is_refused_naming_the_config(int window)
    {
        using var dir = Variant("mistral", 2, c => c["sliding_window"] = window);
        var e = Assert.ThrowsAny<PeftException>(() => AutoModel.FromPretrained(dir.Path));
        Assert.Contains("sliding_window", e.Message);
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public void Mask_hides_keys_at_or_behind_the_window_edge_in_cache_positions()
    {
        // 2 cached + 3 new positions, window 2: query at position p sees keys p−1 and p.
        var mask = AttentionMasks.Build(null, 1, 3, 2, causal: true, ScalarType.Float32, torch.CPU, slidingWindow: 2)!;
        var visible = mask[0, 0].eq(0).to_type(ScalarType.Int32);
        int[,] expected = { { 0, 1, 1, 0, 0 }, { 0, 0, 1, 1, 0 }, { 0, 0, 0, 1, 1 } };
        for (var q = 0; q < 3; q++)
        {
            for (var k = 0; k < 5; k++)
            {
                Assert.Equal(expected[q, k], visible[q, k].item<int>());
            }
        }
        Assert.Throws<PeftException>(() => AttentionMasks.Build(null, 1, 3, 0, causal: false, ScalarType.Float32, torch.CPU, slidingWindow: 2));
    }
}
