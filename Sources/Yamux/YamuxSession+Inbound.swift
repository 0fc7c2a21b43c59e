import NIOCore

extension YamuxSession {
    /// What handling a SYN did.
    enum SYNOutcome {
        /// The stream exists now; go on with the frame's other flags and payload.
        case opened
        /// The stream was refused with RST; drop the rest of the frame.
        case refused
    }

    /// Routes one inbound frame by type.
    mutating func handle(frame: YamuxFrame, now: ContinuousClock.Instant) -> YamuxStateMachineResult {
        if self.costsWorkWithoutData(frame), !self.controlFrameBudget.charge(now: now) {
            return .sessionError(.protocolError, self.controlFrameBudget.exhaustedError)
        }
        switch frame.header.type {
        case .data, .windowUpdate:
            return self.receiveStreamFrame(frame)
        case .ping:
            return self.receivePing(frame.header, now: now)
        case .goAway:
            return self.receiveGoAway(frame.header)
        }
    }

    /// Whether a frame is charged to the control-frame budget: it makes us answer or work
    /// but carries no stream data and opens no stream we keep.
    func costsWorkWithoutData(_ frame: YamuxFrame) -> Bool {
        let header = frame.header
        switch header.type {
        case .ping:
            return header.flags.contains(.syn)
        case .goAway:
            return true
        case .data, .windowUpdate:
            if header.flags.contains(.rst) { return true }
            if header.flags.contains(.syn) {
                // A SYN we will refuse (answered with RST) is pure cost to us.
                return self.localGoAwaySent || self.streams.count >= self.configuration.maximumStreams
                    || self.pendingAccept.count >= self.configuration.acceptBacklog
            }
            if header.streamID == 0 || self.streams[header.streamID] == nil { return true }
            if header.flags.contains(.ack) || header.flags.contains(.fin) { return false }
            return header.type == .data ? frame.payload.readableBytes == 0 : header.length == 0
        }
    }

    /// A Data or WindowUpdate frame: SYN, then RST, ACK, payload or window delta, FIN.
    mutating func receiveStreamFrame(_ frame: YamuxFrame) -> YamuxStateMachineResult {
        let header = frame.header
        let streamID = header.streamID
        guard streamID != 0 else {
            return .sessionError(.protocolError, .invalidStreamID(0, "\(header.type) on the session id"))
        }

        if header.flags.contains(.syn) {
            do {
                switch try self.receiveSYN(streamID: streamID) {
                case .opened: break
                case .refused: return .ok
                }
            } catch {
                return .sessionError(.protocolError, error)
            }
        }

        guard var stream = self.streams[streamID] else {
            if self.wasNeverOpened(streamID) {
                return .sessionError(.protocolError, .unknownStream(streamID))
            }
            // A stream that existed and is gone (we reset it, refused it or both sides
            // closed it): late frames are dropped, as hashicorp/yamux does.
            return .ok
        }

        if header.flags.contains(.rst) {
            self.removeStream(streamID)
            self.emit(.streamReset(streamID: streamID, reason: .remote))
            return .ok
        }

        if header.flags.contains(.ack) {
            stream.stateMachine.receiveACK()
        }

        switch header.type {
        case .data:
            let length = frame.payload.readableBytes
            if length > 0 {
                guard stream.stateMachine.mayReceiveData else {
                    self.streams[streamID] = stream
                    return .streamError(streamID: streamID, .unexpectedFlag("data after FIN on stream \(streamID)"))
                }
                guard let length32 = UInt32(exactly: length) else {
                    return .sessionError(
                        .protocolError, .frameTooLarge(length: .max, limit: self.configuration.receiveWindow))
                }
                do {
                    try stream.receiveWindow.receiveData(length: length32, streamID: streamID)
                } catch {
                    return .sessionError(.protocolError, error)
                }
                self.emit(.streamData(streamID: streamID, frame.payload))
            }
        case .windowUpdate:
            do {
                if try stream.sendWindow.receiveIncrement(header.length, streamID: streamID),
                    stream.stateMachine.maySendData
                {
                    self.emit(.windowOpened(streamID: streamID))
                }
            } catch {
                return .sessionError(.protocolError, error)
            }
        case .ping, .goAway:
            return .sessionError(.internalError, .impossibleSituation("\(header.type) routed as a stream frame"))
        }

        if header.flags.contains(.fin) {
            do {
                switch try stream.stateMachine.receiveFIN() {
                case .halfClosed:
                    self.emit(.streamHalfClosed(streamID: streamID))
                case .closed:
                    self.removeStream(streamID)
                    self.emit(.streamHalfClosed(streamID: streamID))
                    self.emit(.streamClosed(streamID: streamID))
                    return .ok
                }
            } catch {
                return .sessionError(.protocolError, error)
            }
        }

        self.streams[streamID] = stream
        return .ok
    }

    /// A SYN: the peer opens `streamID`. Violations of id rules throw; limits refuse the
    /// stream with RST.
    mutating func receiveSYN(streamID: UInt32) throws(YamuxError) -> SYNOutcome {
        guard !self.role.opens(streamID) else {
            throw .invalidStreamID(streamID, "SYN with our parity")
        }
        guard self.streams[streamID] == nil else {
            throw .duplicateStream(streamID)
        }
        guard streamID > self.highestRemoteStreamID else {
            throw .invalidStreamID(streamID, "not above the previous \(self.highestRemoteStreamID)")
        }
        self.highestRemoteStreamID = streamID

        if self.localGoAwaySent || self.streams.count >= self.configuration.maximumStreams
            || self.pendingAccept.count >= self.configuration.acceptBacklog
        {
            self.emit(.writeFrame(.windowUpdate(streamID: streamID, flags: .rst)))
            return .refused
        }

        var stream = YamuxStream(id: streamID, receiveWindow: self.configuration.receiveWindow)
        stream.stateMachine.receiveSYN()
        self.streams[streamID] = stream
        self.pendingAccept.insert(streamID)
        self.emit(.streamOpened(streamID: streamID))
        return .opened
    }

    /// Whether no SYN was ever sent for `streamID` by either side.
    func wasNeverOpened(_ streamID: UInt32) -> Bool {
        if self.role.opens(streamID) {
            return UInt64(streamID) >= self.nextLocalStreamID
        }
        return streamID > self.highestRemoteStreamID
    }

    /// A Ping: answer a request, time a response. The stream id is not checked (the spec
    /// says it "should" be 0).
    mutating func receivePing(_ header: YamuxFrameHeader, now: ContinuousClock.Instant) -> YamuxStateMachineResult {
        if header.flags.contains(.syn) {
            self.emit(.writeFrame(.ping(flags: .ack, opaque: header.length)))
        } else if header.flags.contains(.ack) {
            if let rtt = self.keepalive.receiveACK(opaque: header.length, now: now) {
                self.emit(.pingRTT(opaque: header.length, rtt: rtt))
            }
        }
        return .ok
    }

    /// A GoAway: normal stops our new streams; any other code ends the session.
    mutating func receiveGoAway(_ header: YamuxFrameHeader) -> YamuxStateMachineResult {
        let code = YamuxGoAwayCode(networkCode: header.length)
        if code == .normal {
            if !self.remoteGoAwayReceived {
                self.remoteGoAwayReceived = true
                self.emit(.goAwayReceived(code))
            }
        } else {
            self.terminate(.remote(code), sendingGoAway: nil)
        }
        return .ok
    }
}
